"""Security holes of issue 13 that pure code can show: formula neutralisation (hole 6) and the
per-purpose signing keys with rotation (hole 1). See docs/security.md."""

import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from openpyxl import load_workbook

from services.followup.adapters import FeedbackTokens
from services.followup.domain import CaseError
from services.intake import sheets
from services.intake.domain import tracking_code_valid, tracking_secret
from shared.keys import KeyRing
from shared.settings import Settings
from tests.unit.test_intake_domain import opinion, submission


@pytest.mark.parametrize("prefix", ["\x01", "\x00", "\x08", "\x0b\x0c", "\x1b", "\x1f\x01"])
def test_hole_06_formula_behind_control_characters_stays_text(prefix: str) -> None:
    bad = opinion("x", 9)
    bad.submission = submission(title=f'{prefix}=HYPERLINK("http://evil.example","点我")')
    row = sheets.export_row(bad, mask=True)
    book = load_workbook(io.BytesIO(sheets.write_xlsx([row])))
    title = next(book.active.iter_rows(min_row=2))[sheets.EXPORT_COLUMNS.index("标题")]
    assert title.data_type == "s"
    assert title.value == '\'=HYPERLINK("http://evil.example","点我")'


def _serve(service: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Start ``service`` as the operators do, outside the local dev stack (no MINYI_ENV)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MINYI_")}
    clean |= {
        "MINYI_AMQP_PASSWORDS": json.dumps({service: "a" * 40}),
        "MINYI_MONGO_URL": f"mongodb://{service}:{'b' * 40}@127.0.0.1:1/",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", "serve", service, "--port", "1"],
        env=clean,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_hole_01_default_secrets_stop_the_service_with_one_line() -> None:
    known = "minyi-dev-secret-change-me"
    intake = _serve("intake", MINYI_SECRET=known, MINYI_TRACKING_KEY=known)
    assert intake.returncode == 2, intake.stderr
    [line] = intake.stderr.strip().splitlines()
    assert "MINYI_TRACKING_KEY is a known or short secret" in line
    followup = _serve("followup", MINYI_SECRET=known)
    [line] = followup.stderr.strip().splitlines()
    assert followup.returncode == 2 and "MINYI_FEEDBACK_KEY is not set" in line
    weak_store = _serve("routing", MINYI_MONGO_URL="mongodb://127.0.0.1:1/")
    [line] = weak_store.stderr.strip().splitlines()
    assert weak_store.returncode == 2 and "password in MINYI_MONGO_URL is not set" in line
    shared = _serve("notification", MINYI_AMQP_PASSWORDS=json.dumps({"notification": "minyi-dev"}))
    [line] = shared.stderr.strip().splitlines()
    assert shared.returncode == 2 and "MINYI_AMQP_PASSWORDS[notification]" in line


def test_hole_01_keys_per_purpose_rotate_with_a_grace_period() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    old = Settings(tracking_key="k1" * 20, feedback_key="f1" * 20)
    code = tracking_secret(old.tracking_keys(), "SQ-2026-000001")
    # The same key text for another purpose signs something else.
    assert KeyRing("feedback", "k1" * 20).sign("SQ-2026-000001")[:12] != code
    rotated = old.model_copy(
        update={
            "tracking_key": "k2" * 20,
            "tracking_key_previous": "k1" * 20,
            "previous_keys_until": now + timedelta(days=30),
        }
    )
    keys = rotated.tracking_keys()
    assert tracking_secret(keys, "SQ-2026-000001") != code  # the new key signs
    assert tracking_code_valid(keys, "SQ-2026-000001", code, now)  # the old one still counts
    assert not tracking_code_valid(keys, "SQ-2026-000001", code, now + timedelta(days=31))
    assert not tracking_code_valid(keys, "SQ-2026-000002", code, now)
    assert not tracking_code_valid(keys, "SQ-2026-000001", "码" * 12, now)  # no 500 either
    tokens = FeedbackTokens(old.feedback_keys(), "http://followup")
    token = tokens.url("case-1", 1, now + timedelta(days=60)).rsplit("/", 1)[1]
    new = rotated.model_copy(
        update={"feedback_key": "f2" * 20, "feedback_key_previous": "f1" * 20}
    ).feedback_keys()
    assert FeedbackTokens(new, "http://followup").verify(token, now) == ("case-1", 1)
    with pytest.raises(CaseError):
        FeedbackTokens(new, "http://followup").verify(token, now + timedelta(days=31))


def test_hole_01_compose_requires_every_secret_and_is_not_the_local_stack() -> None:
    compose = yaml.safe_load(Path("docker-compose.yml").read_text())
    text = Path("docker-compose.yml").read_text()
    assert "MINYI_ENV" not in {
        k for s in compose["services"].values() for k in s.get("environment", {})
    }
    assert ":-admin" not in text and "guest" not in text
    mongo = compose["services"]["mongo"]["environment"]
    assert mongo["MONGO_INITDB_ROOT_PASSWORD"].startswith("${MONGO_ROOT_PASSWORD:?")
    passwords = set()
    for service in ("intake", "routing", "followup", "notification"):
        env = compose["services"][service]["environment"]
        assert (
            f"mongodb://{service}:${{MINYI_{service.upper()}_MONGO_PASSWORD:?"
            in env["MINYI_MONGO_URL"]
        )
        assert json.loads(env["MINYI_AMQP_PASSWORDS"]).keys() == {service}
        passwords.add(env["MINYI_AMQP_PASSWORDS"])
    assert len(passwords) == 4  # one password per service user, each knows only its own
    assert compose["services"]["intake"]["environment"]["MINYI_TRACKING_KEY"].startswith(
        "${MINYI_TRACKING_KEY:?"
    )
    assert compose["services"]["followup"]["environment"]["MINYI_FEEDBACK_KEY"].startswith(
        "${MINYI_FEEDBACK_KEY:?"
    )
    assert "MINYI_TRACKING_KEY" not in compose["services"]["followup"]["environment"]
