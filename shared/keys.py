"""Signing keys, one per purpose (tracking codes, feedback links), rotatable: a new key signs
at once, and the key it replaced is still accepted until the end of a grace period."""

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class KeyRing:
    """The key of one ``purpose``; ``previous`` verifies (never signs) until ``previous_until``."""

    purpose: str
    current: str
    previous: str = ""
    previous_until: datetime | None = None

    def _digest(self, key: str, message: str) -> str:
        # The purpose is part of what is signed: a code of one kind is never valid as another.
        signed = f"{self.purpose}:{message}".encode()
        return hmac.new(key.encode(), signed, hashlib.sha256).hexdigest()

    def sign(self, message: str) -> str:
        return self._digest(self.current, message)

    def verify(self, message: str, code: str, now: datetime, length: int = 64) -> bool:
        """Whether ``code`` (the first ``length`` hex digits of a signature) signs ``message``
        with the current key, or with the previous one while its grace period lasts. Any text
        is safe to pass: it is compared as bytes."""
        keys = [self.current]
        if self.previous and self.previous_until is not None and now < self.previous_until:
            keys.append(self.previous)
        given = code.encode()
        return any(
            hmac.compare_digest(given, self._digest(key, message)[:length].encode()) for key in keys
        )
