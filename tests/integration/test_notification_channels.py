"""The notification service in-process, against the real RabbitMQ and document store and real
local receivers: an SMTP server, webhook endpoints and an SMS gateway."""

import hmac
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient

from services.notification import handlers
from services.notification.adapters import GONE
from services.notification.config import ChannelSettings
from services.notification.domain import signature
from services.notification.handlers import NotificationPorts
from services.notification.main import create_app
from shared import auth, broker_admin
from shared.events import (
    AssignmentSigned,
    CloudEvent,
    Location,
    NotificationDelivered,
    OpinionAssigned,
    OpinionReceived,
)
from shared.messaging import EventBus
from shared.settings import Settings
from shared.store import Document
from tools.demo import wait_for

from .conftest import Publishers
from .notification_servers import Mailbox, Receiver, free_port, smtp_server

NOW = datetime.now(UTC)


def received(opinion_id: str = "op-1", office: str = "office-a") -> CloudEvent:
    return CloudEvent.wrap(
        "/test",
        OpinionReceived(
            opinion_id=opinion_id,
            tracking_no="SQ-2026-000042",
            office_id=office,
            title="幸福路夜间施工噪音扰民",
            content="每晚十一点后仍在施工。联系人电话 13912345678。",
            channel="接待日",
            submitter_kind="委员",
            location=Location(district="示范区", street="幸福街道"),
            received_at=NOW,
        ),
    )


def assigned(department: str, opinion_id: str = "op-2") -> CloudEvent:
    return CloudEvent.wrap(
        "/test",
        OpinionAssigned(
            opinion_id=opinion_id,
            department=department,
            tracking_no="SQ-2026-000043",
            office_id="office-a",
            title="和平路公交站台破损",
            department_name="区交通运输局",
            role="lead",
            category="交通出行",
            urgency="general",
            explanation="关键词：公交",
            received_at=NOW,
        ),
    )


def handled(event: CloudEvent, outcome: str = "ok") -> float:
    """How many times the notification consumer handled events of this type with ``outcome``."""
    labels = {"service": "notification", "type": event.type, "outcome": outcome}
    return REGISTRY.get_sample_value("minyi_events_handled_total", labels) or 0.0


@dataclass
class Notifier:
    """The notification service running in this process, and what it talks to."""

    app: FastAPI
    ports: NotificationPorts
    settings: Settings
    http: httpx.AsyncClient
    publisher: Publishers
    mailbox: Mailbox
    gateway: Receiver
    office: dict[str, str]
    admin: dict[str, str]

    async def subscribe(self, status: int = 201, **body: Any) -> dict[str, Any]:
        response = await self.http.post("/subscriptions", headers=self.office, json=body)
        assert response.status_code == status, response.text
        result: dict[str, Any] = response.json()
        return result

    async def deliveries(self, opinion_id: str) -> list[dict[str, Any]]:
        response = await self.http.get(
            "/deliveries", params={"opinion_id": opinion_id}, headers=self.office
        )
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()
        return rows

    async def parked(self) -> list[dict[str, Any]]:
        return await broker_admin.parked("notification", self.settings, 50)


@pytest.fixture
async def notifier(
    isolated: Settings,
    make_bus: Callable[[str], EventBus],
    mongo: AsyncMongoClient[Document],
) -> AsyncIterator[Notifier]:
    # Five attempts, so an endpoint failing three times in a row still gets its delivery.
    settings = isolated.model_copy(update={"max_attempts": 5, "webhook_timeout_seconds": 1.0})
    smtp_port, sms_port = free_port(), free_port()
    channels = ChannelSettings(
        smtp_port=smtp_port,
        sms_gateway_url=f"http://127.0.0.1:{sms_port}/hook",
        quiet_recheck_ms=300,
    )
    app = create_app(settings, channels)
    keys = mongo[settings.database(auth.AUTH_DB)]
    office = await auth.create_key(keys, auth.Role.OFFICE, "office-a", "测试办公室")
    admin = await auth.create_key(keys, auth.Role.ADMIN, "admin", "管理员")
    with smtp_server(smtp_port) as mailbox:
        async with (
            Receiver(sms_port, then=200).running() as gateway,
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://notification"
            ) as http,
        ):
            publisher = Publishers(make_bus)
            yield Notifier(
                app=app,
                ports=app.state.ports,
                settings=settings,
                http=http,
                publisher=publisher,
                mailbox=mailbox,
                gateway=gateway,
                office={"Authorization": f"Bearer {office}"},
                admin={"Authorization": f"Bearer {admin}"},
            )


def _valid_signature(secret: str, headers: dict[str, str], body: bytes) -> bool:
    header = headers["x-minyi-signature"]
    timestamp = header.partition("t=")[2].partition(",")[0]
    return hmac.compare_digest(header, signature(secret, int(timestamp), body))


async def test_email_webhook_and_sms_each_arrive_once_when_the_event_comes_twice(
    notifier: Notifier,
) -> None:
    async with Receiver(free_port()).running() as hook:
        webhook = await notifier.subscribe(channel="webhook", address=hook.url)
        await notifier.subscribe(channel="email", address="office-a@example.cn")
        await notifier.subscribe(channel="sms", address="138 0000 1234")
        event = received()
        before = handled(event)
        # The same event twice, as a redelivery or a republished outbox entry would bring it.
        await notifier.publisher.publish(event)
        await notifier.publisher.publish(event)
        await wait_for(lambda: handled(event) >= before + 2, "both copies handled")
        log = await notifier.deliveries(event.subject)

    assert sorted((row["channel"], row["status"]) for row in log) == [
        ("email", "delivered"),
        ("sms", "delivered"),
        ("webhook", "delivered"),
    ]
    assert {row["_id"] for row in log} == {
        f"{event.id}:office:office-a:{row['channel']}:{row['subscription_id']}" for row in log
    }

    # Webhook: exactly one POST, the CloudEvent, signed, with the phone number masked.
    assert len(hook.calls) == 1
    call = hook.calls[0]
    assert _valid_signature(webhook["secret"], call.headers, call.body)
    assert call.headers["content-type"] == "application/cloudevents+json"
    posted = call.json()
    assert posted["id"] == event.id and posted["type"] == "minyi.opinion.received.v1"
    assert posted["data"]["content"] == "每晚十一点后仍在施工。联系人电话 139****5678。"

    # E-mail: one message, Chinese subject and body, correctly encoded.
    assert len(notifier.mailbox.raw) == 1
    raw = notifier.mailbox.raw[0]
    raw.decode("ascii")  # 7-bit clean on the wire: RFC 2047 headers, base64 body
    mail: EmailMessage = notifier.mailbox.messages()[0]
    assert mail["Subject"] == "【登记】幸福路夜间施工噪音扰民（SQ-2026-000042）"
    assert mail.get_content_charset() == "utf-8"
    text = mail.get_content()
    assert "意见“幸福路夜间施工噪音扰民”已登记，编号 SQ-2026-000042。" in text
    assert "139****5678" in text and "13912345678" not in text
    assert mail["To"] == "office-a@example.cn"
    assert mail["X-Minyi-Delivery"].strip().startswith(event.id)  # long: folded on the wire

    # SMS: one message through the gateway, as the approved sign, template code and params.
    assert len(notifier.gateway.calls) == 1
    sms = notifier.gateway.calls[0].json()
    assert sms["to"] == "13800001234"
    assert (sms["sign"], sms["template_code"]) == ("民意直通车", "MINYI_NOTICE")
    assert sms["params"] == {
        "event": "登记",
        "tracking_no": "SQ-2026-000042",
        "summary": "【登记】幸福路夜间施工噪音扰民（SQ-2026-000042）",
    }
    assert sms["ref"].startswith(event.id)


async def test_webhook_failing_three_times_then_succeeding_gets_one_delivery(
    notifier: Notifier,
) -> None:
    async with Receiver(free_port(), script=[503, 503, 503]).running() as hook:
        await notifier.subscribe(channel="webhook", address=hook.url)
        event = received()
        await notifier.publisher.publish(event)

        async def delivered() -> list[dict[str, Any]] | None:
            rows = await notifier.deliveries(event.subject)
            return rows if rows and rows[0]["status"] == "delivered" else None

        row = (await wait_for(delivered, "the delivery"))[0]

    assert len(hook.calls) == 4
    assert len(hook.accepted) == 1
    assert row["attempts"] == 4
    assert await notifier.parked() == []


async def test_always_failing_webhook_is_parked_and_the_service_goes_on(
    notifier: Notifier,
) -> None:
    async with (
        Receiver(free_port(), then=503).running() as broken,
        Receiver(free_port()).running() as healthy,
    ):
        await notifier.subscribe(channel="webhook", address=broken.url)
        doomed = received(opinion_id="op-doomed")
        await notifier.publisher.publish(doomed)
        parked = await wait_for(notifier.parked, "the parked event")
        # Another office's events still go out.
        other = await notifier.http.post(
            "/subscriptions",
            headers=notifier.admin,
            json={"channel": "webhook", "address": healthy.url, "recipient": "office:office-b"},
        )
        assert other.status_code == 201, other.text
        await notifier.publisher.publish(received(opinion_id="op-fine", office="office-b"))
        await wait_for(lambda: healthy.accepted, "the other office's webhook")
        log = await notifier.deliveries("op-doomed")

    assert len(broken.calls) == notifier.settings.max_attempts
    assert [p["message_id"] for p in parked] == [doomed.id]
    assert "failed 5 times, last: HTTP 503" in parked[0]["reason"]
    assert [(row["status"], row["attempts"]) for row in log] == [("failed", 5)]


async def test_hanging_webhook_times_out_and_is_retried_later(notifier: Notifier) -> None:
    async with Receiver(free_port(), script=["hang"], hang_seconds=3).running() as hook:
        await notifier.subscribe(channel="webhook", address=hook.url)
        event = received()
        await notifier.publisher.publish(event)

        async def delivered() -> list[dict[str, Any]] | None:
            rows = await notifier.deliveries(event.subject)
            return rows if rows and rows[0]["status"] == "delivered" else None

        row = (await wait_for(delivered, "the delivery after the timeout"))[0]

    assert row["attempts"] == 2
    assert len(hook.accepted) == 1


async def test_gone_webhook_is_parked_and_switched_off(notifier: Notifier) -> None:
    async with Receiver(free_port(), then=410).running() as hook:
        subscription = await notifier.subscribe(channel="webhook", address=hook.url)
        event = received()
        await notifier.publisher.publish(event)
        parked = await wait_for(notifier.parked, "the parked event")
        listed = await notifier.http.get("/subscriptions", headers=notifier.office)

    assert len(hook.calls) == 1  # 410 is final: no retries
    assert "HTTP 410 Gone" in parked[0]["reason"]
    [view] = listed.json()
    assert view["id"] == subscription["id"]
    assert (view["active"], view["disabled_reason"]) == (False, GONE)
    # Switched on again by its owner.
    enabled = await notifier.http.post(
        f"/subscriptions/{subscription['id']}/enable", headers=notifier.office
    )
    assert enabled.json()["active"] is True


async def test_broken_template_parks_the_event_with_the_reason_and_the_service_goes_on(
    notifier: Notifier,
) -> None:
    bad = "{{ data.no_such_field }}\n正文"
    response = await notifier.http.put(
        "/templates/opinion.received/office", headers=notifier.admin, json={"source": bad}
    )
    assert response.status_code == 200, response.text
    await notifier.subscribe(channel="email", address="office-a@example.cn")
    event = received()
    await notifier.publisher.publish(event)
    parked = await wait_for(notifier.parked, "the parked event")
    # The next event (another template) is delivered.
    signed = CloudEvent.wrap(
        "/test",
        AssignmentSigned(
            opinion_id="op-1", office_id="office-a", department="transport", signed_at=NOW
        ),
    )
    await notifier.publisher.publish(signed)
    await wait_for(lambda: notifier.mailbox.raw, "the next e-mail")
    log = {row["event_type"]: row for row in await notifier.deliveries("op-1")}

    assert [p["message_id"] for p in parked] == [event.id]
    assert "template error" in parked[0]["reason"]
    assert "no_such_field" in parked[0]["reason"]
    assert log["minyi.opinion.received.v1"]["status"] == "failed"
    assert notifier.mailbox.messages()[0]["Subject"].startswith("【签收】")

    # Fixed template + replay: the parked event is delivered once.
    await notifier.http.delete("/templates/opinion.received/office", headers=notifier.admin)
    assert await broker_admin.replay("notification", notifier.settings, 10) == 1
    await wait_for(lambda: len(notifier.mailbox.raw) == 2, "the replayed e-mail")
    assert notifier.mailbox.messages()[1]["Subject"].startswith("【登记】")


async def test_quiet_hours_hold_messages_until_they_end(notifier: Notifier) -> None:
    clock = {"now": datetime(2026, 10, 1, 15, 0, tzinfo=UTC)}  # 23:00 in Beijing
    notifier.ports.clock = lambda: clock["now"]
    await notifier.subscribe(
        channel="sms",
        address="13800001234",
        quiet_hours={"start": "22:00", "end": "07:00"},
    )
    event = received()
    await notifier.publisher.publish(event)

    async def held() -> list[dict[str, Any]] | None:
        rows = await notifier.deliveries(event.subject)
        return rows if rows and rows[0]["status"] == "held" else None

    await wait_for(held, "the held delivery")
    before = handled(event)
    await wait_for(lambda: handled(event) >= before + 1, "a look at the held event")
    assert notifier.gateway.calls == []

    clock["now"] += timedelta(hours=9)  # 08:00 in Beijing

    async def delivered() -> list[dict[str, Any]] | None:
        rows = await notifier.deliveries(event.subject)
        return rows if rows and rows[0]["status"] == "delivered" else None

    await wait_for(delivered, "the delivery after the quiet hours")
    assert len(notifier.gateway.calls) == 1


async def test_department_and_supervisor_get_their_own_wording(notifier: Notifier) -> None:
    keys = (
        await _key(notifier, auth.Role.DEPARTMENT, "transport"),
        await _key(notifier, auth.Role.SUPERVISOR, "duban"),
    )
    for key, address in zip(keys, ("dept@example.cn", "duban@example.cn"), strict=True):
        response = await notifier.http.post(
            "/subscriptions",
            headers=key,
            json={"channel": "email", "address": address, "event_names": ["opinion.assigned"]},
        )
        assert response.status_code == 201, response.text
    await notifier.publisher.publish(assigned("transport"))
    # Not the department's: only the supervisor hears about it.
    await notifier.publisher.publish(assigned("education", opinion_id="op-3"))
    await wait_for(lambda: len(notifier.mailbox.raw) >= 3, "three e-mails")

    by_address: dict[str, list[str]] = {}
    for mail in notifier.mailbox.messages():
        by_address.setdefault(mail["To"], []).append(mail["Subject"])
    assert by_address["dept@example.cn"] == [
        "【交办】请签收：和平路公交站台破损（SQ-2026-000043，主办）"
    ]
    assert (
        by_address["duban@example.cn"]
        == ["【交办】和平路公交站台破损（SQ-2026-000043）已交区交通运输局主办"] * 2
    )


async def _key(notifier: Notifier, role: auth.Role, subject: str) -> dict[str, str]:
    client: AsyncMongoClient[Document] = notifier.ports.recipients.collection.database.client
    key = await auth.create_key(
        client[notifier.settings.database(auth.AUTH_DB)], role, subject, subject
    )
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"channel": "webhook", "address": "ftp://example.cn/x"}, {"address"}),
        ({"channel": "webhook", "address": "not a url"}, {"address"}),
        ({"channel": "email", "address": "someone@"}, {"address"}),
        ({"channel": "sms", "address": "12345"}, {"address"}),
        ({"channel": "pigeon", "address": "x"}, {"channel"}),
        (
            {"channel": "sms", "address": "13800001234", "event_names": ["opinion.eaten"]},
            {"event_names"},
        ),
        (
            {"channel": "email", "address": "a@b.cn", "quiet_hours": {"start": "25:00"}},
            {"quiet_hours.start", "quiet_hours.end"},
        ),
    ],
)
async def test_bad_subscriptions_are_422_naming_the_field(
    notifier: Notifier, body: dict[str, Any], fields: set[str]
) -> None:
    response = await notifier.http.post("/subscriptions", headers=notifier.office, json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert {e["field"] for e in response.json()["errors"]} == fields


async def test_template_syntax_errors_and_foreign_recipients_are_refused(
    notifier: Notifier,
) -> None:
    syntax = await notifier.http.put(
        "/templates/case.closed/office", headers=notifier.admin, json={"source": "{% if %}"}
    )
    unknown = await notifier.http.put(
        "/templates/case.eaten/office", headers=notifier.admin, json={"source": "x"}
    )
    by_office = await notifier.http.put(
        "/templates/case.closed/office", headers=notifier.office, json={"source": "x"}
    )
    foreign = await notifier.http.post(
        "/subscriptions",
        headers=notifier.office,
        json={"channel": "email", "address": "a@b.cn", "recipient": "department:transport"},
    )
    twice = [
        await notifier.http.post(
            "/subscriptions", headers=notifier.office, json={"channel": "sms", "address": phone}
        )
        for phone in ("13800001234", "+8613800001234")
    ]

    assert syntax.status_code == 422
    assert [e["field"] for e in syntax.json()["errors"]] == ["source"]
    assert "line 1" in syntax.json()["errors"][0]["message"]
    assert unknown.status_code == 404
    assert by_office.status_code == 403
    assert foreign.status_code == 403
    assert [r.status_code for r in twice] == [201, 409]
    assert twice[0].json()["address"] == "138****1234"
    assert json.loads(twice[1].text)["title"]


async def test_a_delivery_a_crash_kept_from_being_announced_is_announced_by_the_next_round(
    notifier: Notifier,
) -> None:
    """notification.delivered is stored without an outbox marker (the unacknowledged event
    stands for it): after a crash between storing and publishing it, the event's next round
    publishes it and sends nothing again."""
    async with Receiver(free_port()).running() as hook:
        await notifier.subscribe(channel="webhook", address=hook.url)
        event = received()
        await handlers.deliver_event(event, notifier.ports)
        [row] = await notifier.deliveries(event.subject)
        assert row["status"] == "delivered"
        deliveries = notifier.ports.deliveries
        assert await deliveries.pending.count_documents({}) == 0  # no marker, not even for a while

        # As a crash would leave it: stored delivered, its announcement still in the outbox.
        facts = {
            "opinion_id": event.subject,
            "office_id": "office-a",
            "recipient": row["recipient"],
            "channel": "webhook",
            "source_event_id": event.id,
            "source_event_type": event.type,
            "delivery_id": row["_id"],
        }
        announced = CloudEvent.wrap("/test", NotificationDelivered(**facts))
        left = {f"outbox.{announced.id}": announced.model_dump(mode="json")}
        await deliveries.collection.update_one({"_id": row["_id"]}, {"$set": left})
        before = handled(announced)
        await handlers.deliver_event(event, notifier.ports)  # the redelivery
        await wait_for(lambda: handled(announced) > before, "notification.delivered")
        assert len(hook.calls) == 1
