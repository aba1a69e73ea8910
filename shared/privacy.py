"""Personal data (个人信息): how phone numbers, ID numbers and names are masked wherever they
leave the service that holds them — events, lists, webhooks, logs."""

import re
from typing import Any

# 身份证号 (18 digits, last may be X) before mobile numbers, so a phone-like run inside an
# ID number is not masked separately.
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{8}(\d{3}[\dXx])(?![0-9A-Za-z])")
_MOBILE = re.compile(r"(?<![0-9A-Za-z])(\+?86)?(1[3-9]\d)\d{4}(\d{4})(?![0-9A-Za-z])")


def mask_personal_data(text: str) -> str:
    """Mask mobile numbers (138****5678) and ID numbers (110101********123X) in free text."""
    text = _ID_NUMBER.sub(lambda m: f"{m[1]}{'*' * 8}{m[2]}", text)
    return _MOBILE.sub(lambda m: f"{m[1] or ''}{m[2]}****{m[3]}", text)


def mask_phone(phone: str | None) -> str | None:
    """138****5678 — enough to recognise, not enough to call."""
    if phone is None:
        return None
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "****"


def mask_name(name: str) -> str:
    """王** — the family name only."""
    return name[:1] + "*" * max(len(name) - 1, 1)


def mask_strings(value: Any) -> Any:
    """``mask_personal_data`` applied to every string inside a JSON-like value, except ids and
    links (``*_id``, ``*_url``), whose digits are not personal data."""
    if isinstance(value, str):
        return mask_personal_data(value)
    if isinstance(value, dict):
        return {k: v if k.endswith(("_id", "_url")) else mask_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_strings(v) for v in value]
    return value
