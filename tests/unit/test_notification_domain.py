"""Webhook signatures, who receives what, masking, quiet hours, switching off, claims."""

import asyncio
import hashlib
import hmac
from datetime import UTC, datetime, time, timedelta
from typing import Any, cast

import pytest
from pydantic import ValidationError

from services.notification.domain import (
    ONLY_TO,
    ChannelKind,
    Delivery,
    DeliveryStatus,
    QuietHours,
    Recipient,
    SendSlots,
    Subscription,
    delivery_id,
    recipients_of,
    signature,
)
from services.notification.handlers import NotificationPorts, deliver_event
from shared.events import (
    AssignmentSigned,
    CloudEvent,
    EventData,
    FeedbackReceived,
    FeedbackRequested,
    Location,
    NotificationDelivered,
    OpinionBriefed,
    OpinionFile,
    Rating,
    SubmitterSummary,
)
from shared.privacy import mask_personal_data, mask_strings

NOW = datetime(2026, 10, 1, tzinfo=UTC)


def sub(sid: str = "s1", names: list[str] | None = None, active: bool = True) -> Subscription:
    return Subscription(
        id=sid,
        channel=ChannelKind.WEBHOOK,
        address="http://x",
        event_names=names or [],
        secret="s",
        created_at=NOW,
        active=active,
    )


def test_signature_is_hmac_sha256_over_timestamp_and_body() -> None:
    body = '{"a":"中文"}'.encode()
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("k", 1700000000, body) == f"t=1700000000,v1={expected}"


def test_events_reach_their_office_department_and_member() -> None:
    class MemberNews(EventData):
        name = "test.member"
        office_id: str
        member_id: str

    signed = AssignmentSigned(opinion_id="op", office_id="o1", department="housing", signed_at=NOW)
    rated = FeedbackReceived(
        opinion_id="op", office_id="o1", rating=Rating.SATISFIED, comment="", rated_at=NOW
    )
    news = MemberNews(opinion_id="op", office_id="o1", member_id="m7")
    assert recipients_of(signed) == ["office:o1", "department:housing"]
    assert recipients_of(rated) == ["office:o1"]
    assert recipients_of(news) == ["office:o1", "member:m7"]


def test_the_feedback_link_and_the_opinions_brief_go_only_to_whom_they_are_for() -> None:
    link = FeedbackRequested(
        opinion_id="op",
        office_id="o1",
        tracking_no="SQ-2026-000001",
        feedback_url="http://followup/feedback/t",
        expires_at=NOW,
    )
    brief = OpinionBriefed(
        opinion_id="op",
        department="housing",
        reason="交办",
        opinion=OpinionFile(
            revision=1,
            tracking_no="SQ-2026-000001",
            office_id="o1",
            title="t",
            content="c",
            channel="走访",
            location=Location(district="示范区"),
            submitter=SubmitterSummary(kind="群众", name="张*"),
            member_id="m7",
            received_at=NOW,
        ),
    )
    assert recipients_of(link) == ["office:o1"]
    assert recipients_of(brief) == ["department:housing"]
    assert set(ONLY_TO) == {"feedback.requested", "opinion.briefed"}


def test_subscription_filters_by_event_name_and_active_flag() -> None:
    recipient = Recipient(
        id="office:o1",
        subscriptions={
            "all": sub("all"),
            "closed": sub("closed", ["case.closed"]),
            "off": sub("off", active=False),
        },
    )
    assert [s.id for s in recipient.wants("case.closed")] == ["all", "closed"]
    assert [s.id for s in recipient.wants("assignment.signed")] == ["all"]


def test_delivery_key_names_event_recipient_channel_and_address() -> None:
    assert delivery_id("evt1", "office:o1", sub("s9")) == "evt1:office:o1:webhook:s9"


def test_phone_and_id_numbers_are_masked() -> None:
    text = "联系人王先生 13812345678，身份证 11010119900307123X，座机 010-12345678。"
    masked = mask_personal_data(text)
    assert masked == "联系人王先生 138****5678，身份证 110101********123X，座机 010-12345678。"
    assert mask_personal_data("+8613912345678") == "+86139****5678"
    # Long digit runs that are neither (order numbers) stay as they are.
    assert mask_personal_data("单号 2026100113812345678") == "单号 2026100113812345678"
    assert mask_strings({"a": ["电话13912345678"], "n": 5}) == {"a": ["电话139****5678"], "n": 5}
    # Ids and links keep their digits, and so do digit runs inside other tokens.
    ids = {"opinion_id": "01ABC13912345678", "feedback_url": "http://x/13912345678"}
    assert mask_strings(ids) == ids
    assert mask_personal_data("ULID01HX13912345678") == "ULID01HX13912345678"


@pytest.mark.parametrize(
    ("start", "end", "utc_hour", "left"),
    [
        (time(22), time(7), 15, timedelta(hours=8)),  # 23:00 Beijing, window over midnight
        (time(22), time(7), 20, timedelta(hours=3)),  # 04:00 Beijing
        (time(22), time(7), 2, None),  # 10:00 Beijing
        (time(12), time(14), 5, timedelta(hours=1)),  # 13:00 Beijing, same-day window
        (time(12), time(14), 6, None),  # 14:00 Beijing: the end is outside
    ],
)
def test_quiet_hours_in_beijing_time(
    start: time, end: time, utc_hour: int, left: timedelta | None
) -> None:
    quiet = QuietHours(start=start, end=end)
    assert quiet.ends_after(NOW.replace(hour=utc_hour)) == left


def test_empty_quiet_hours_are_refused() -> None:
    with pytest.raises(ValidationError, match="must differ"):
        QuietHours(start=time(8), end=time(8))


def test_repeated_permanent_failures_switch_a_subscription_off() -> None:
    s = sub()
    assert not s.record_permanent_failure("HTTP 404", gone=False)
    s.record_success()
    assert not s.record_permanent_failure("HTTP 404", gone=False)
    assert not s.record_permanent_failure("HTTP 404", gone=False)
    assert s.record_permanent_failure("HTTP 400", gone=False)
    assert (s.active, s.disabled_reason) == (False, "HTTP 400")
    s.enable()
    assert s.active and s.permanent_failures == 0
    assert s.record_permanent_failure("HTTP 410 Gone", gone=True)
    assert not s.active


def test_a_claimed_delivery_is_left_alone_until_its_lease_runs_out() -> None:
    delivery = Delivery(
        id="d",
        event_id="e",
        event_type="t",
        opinion_id="op",
        recipient="office:o1",
        subscription_id="s1",
        status=DeliveryStatus.SENDING,
        attempts=1,
        claimed_at=NOW,
    )
    lease = timedelta(seconds=60)
    assert not delivery.claimable(NOW + timedelta(seconds=5), lease)
    assert delivery.claimable(NOW + timedelta(seconds=61), lease)
    delivery.status = DeliveryStatus.FAILING
    assert delivery.claimable(NOW, lease)
    delivery.status = DeliveryStatus.DELIVERED
    assert not delivery.claimable(NOW + timedelta(days=1), lease)


async def test_own_notification_events_are_never_delivered() -> None:
    event = CloudEvent.wrap(
        "/test",
        NotificationDelivered(
            opinion_id="op",
            office_id="o1",
            recipient="office:o1",
            channel="webhook",
            source_event_id="e",
            source_event_type="minyi.case.closed.v1",
            delivery_id="d",
        ),
    )
    # Ports that fail if touched: the handler must return before looking anyone up.
    await deliver_event(event, cast(NotificationPorts, cast(Any, object())))


async def test_a_send_waits_briefly_for_a_slot_and_gets_the_one_given_back() -> None:
    slots = SendSlots(1, wait=5)
    assert await slots.take("s1")
    waiting = asyncio.create_task(slots.take("s1"))
    await asyncio.sleep(0.01)
    assert not waiting.done()  # the only slot of s1 is taken: it waits
    assert await slots.take("s2")  # another subscription has slots of its own
    slots.give_back("s1")
    assert await waiting  # handed over, not freed for anyone else
    assert slots.busy == {"s1": 1, "s2": 1}
    slots.give_back("s1")
    assert slots.busy == {"s2": 1}


async def test_a_send_gives_up_when_no_slot_comes_free_in_time() -> None:
    slots = SendSlots(1, wait=0.05)
    assert await slots.take("s1")
    assert not await slots.take("s1")
    slots.give_back("s1")  # nobody waits any more: the slot is free again
    assert slots.busy == {}
    assert await slots.take("s1")
