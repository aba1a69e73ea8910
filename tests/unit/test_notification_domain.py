"""Webhook signatures and who receives what."""

import hashlib
import hmac
from datetime import UTC, datetime

from services.notification.domain import Recipient, WebhookSubscription, recipients_of, signature
from shared.events import AssignmentSigned, FeedbackReceived, Rating

NOW = datetime(2026, 10, 1, tzinfo=UTC)


def test_signature_is_hmac_sha256_over_timestamp_and_body() -> None:
    body = '{"a":"中文"}'.encode()
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("k", 1700000000, body) == f"t=1700000000,v1={expected}"


def test_events_reach_their_office_and_department() -> None:
    signed = AssignmentSigned(opinion_id="op", office_id="o1", department="housing", signed_at=NOW)
    rated = FeedbackReceived(opinion_id="op", office_id="o1", rating=Rating.SATISFIED, comment="")
    assert recipients_of(signed) == ["office:o1", "department:housing"]
    assert recipients_of(rated) == ["office:o1"]


def test_subscription_filters_by_event_name_and_active_flag() -> None:
    def sub(sid: str, names: list[str], active: bool = True) -> WebhookSubscription:
        return WebhookSubscription(
            id=sid, url="http://x", event_names=names, secret="s", created_at=NOW, active=active
        )

    recipient = Recipient(
        id="office:o1",
        subscriptions={
            "all": sub("all", []),
            "closed": sub("closed", ["case.closed"]),
            "off": sub("off", [], active=False),
        },
    )
    assert [s.id for s in recipient.wants("case.closed")] == ["all", "closed"]
    assert [s.id for s in recipient.wants("assignment.signed")] == ["all"]
