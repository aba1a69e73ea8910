"""Notification's security holes of issue 13 (docs/security.md), in-process against the real
RabbitMQ and store, with real local receivers: SSRF through webhooks (hole 2), hostile or slow
receivers (hole 3) and one event multiplying under quiet hours (hole 4)."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.notification import handlers
from services.notification.adapters import NOT_ACCEPTED, NOT_ALLOWED, REFUSED
from services.notification.domain import ChannelKind
from tools.demo import wait_for

from .notification_servers import PORT_BASE, Receiver, free_port
from .test_notification_channels import Notifier, handled, notifier, received

__all__ = ["notifier"]  # the fixture, used by name

HOSTILE_URLS = [
    "http://guest:guest@127.0.0.1:15672/api/overview",  # the broker's management API
    "http://127.0.0.1:15672/api/overview",
    "http://[::1]:15672/api/overview",
    "http://2130706433:15672/",  # 127.0.0.1 as one number
    "http://localhost:27017/",
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://10.0.0.8/hook",
    "http://192.168.1.1/hook",
    "http://[::ffff:10.0.0.1]/hook",
    "http://224.0.0.1/hook",
    "http://0.0.0.0:15672/",
    "http://mongo:27017/",  # a host of the stack itself
    "ftp://example.com/hook",
    "http://no-such-host.invalid/hook",
]


async def test_hole_02_webhook_ssrf(notifier: Notifier) -> None:
    for url in HOSTILE_URLS:
        for body in (
            {"channel": "webhook", "address": url},
            {"url": url},
        ):
            path = "/subscriptions" if "channel" in body else "/subscriptions/webhooks"
            response = await notifier.http.post(path, headers=notifier.office, json=body)
            assert response.status_code == 422, (url, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["errors"][0]["field"] in ("address", "url"), response.text
    assert (await notifier.http.get("/subscriptions", headers=notifier.office)).json() == []

    # A subscription that passed its check once (the name resolved elsewhere then: DNS
    # rebinding) is checked again at send time: a receiver outside the allowed ports is never
    # reached, and the delivery log says only "not allowed".
    outside = PORT_BASE + 1000
    async with (
        Receiver(outside).running() as internal,
        Receiver(free_port(), then=405).running() as refusing,
    ):
        for url in (internal.url, refusing.url, f"http://127.0.0.1:{free_port()}/closed"):
            await handlers.subscribe(
                notifier.ports, "office:office-a", ChannelKind.WEBHOOK, url, [], None, "s"
            )
        event = received()
        await notifier.publisher.publish(event)

        async def settled() -> list[dict[str, Any]] | None:
            rows = await notifier.deliveries(event.subject)
            finals = [r for r in rows if r["status"] == "failed"]
            return rows if len(rows) == 3 and len(finals) >= 2 else None

        rows = await wait_for(settled, "the three deliveries")
    assert internal.calls == []
    errors = sorted(r["last_error"] for r in rows)
    # No status codes or connection errors to scan ports with: the same few words.
    assert errors == sorted([NOT_ALLOWED, REFUSED, NOT_ACCEPTED]), errors


@dataclass
class DrippingReceiver:
    """Answers every POST one byte every ``every`` seconds, for ever; counts open requests."""

    port: int
    every: float = 0.4
    open_now: int = 0
    most_open: int = 0
    requests: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.requests += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            await reader.readuntil(b"\r\n\r\n")
            for byte in b"HTTP/1.1 200 OK\r\n" * 100:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(self.every)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client gave up (the deadline), or the server stops
        finally:
            self.open_now -= 1
            writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator["DrippingReceiver"]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        async with server:
            yield self
            server.close()


@pytest.fixture
def short_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINYI_WEBHOOK_DEADLINE_SECONDS", "2")


async def test_hole_03_slow_receivers_cannot_stop_notification(
    short_deadline: None, notifier: Notifier
) -> None:
    events = [received(opinion_id=f"op-slow-{i}") for i in range(24)]
    async with (
        DrippingReceiver(free_port()).running() as slow,
        Receiver(free_port()).running() as fast,
    ):
        await notifier.subscribe(channel="webhook", address=slow.url)  # first in every round
        await notifier.subscribe(channel="webhook", address=fast.url)
        for event in events:
            await notifier.publisher.publish(event)
        # 24 events, more than the 16 handlers: each would hang on the slow receiver for ever
        # (each byte comes before the 1 s read timeout) and the fast one would wait behind it.
        await wait_for(lambda: len(fast.accepted) >= len(events), "every fast delivery", 20)
        assert slow.most_open <= notifier.ports.slots.per_subscription

        # The overall deadline (2 s) ends each slow request: it is retried, not held for ever.
        async def cut_off() -> bool:
            rows = await notifier.deliveries(events[0].subject)
            return any(r["last_error"] == NOT_ACCEPTED for r in rows)

        await wait_for(cut_off, "a slow delivery cut off by the deadline", 10)

    # A cap on subscriptions per recipient.
    limit = notifier.ports.subscriptions_per_recipient
    for i in range(limit - 2):
        await notifier.subscribe(channel="email", address=f"member{i}@example.com")
    refused = await notifier.subscribe(409, channel="email", address="one-more@example.com")
    assert str(limit) in refused["detail"]


async def test_hole_04_one_event_does_not_multiply_under_quiet_hours(notifier: Notifier) -> None:
    clock = {"now": datetime(2026, 10, 1, 15, 0, tzinfo=UTC)}  # 23:00 in Beijing
    notifier.ports.clock = lambda: clock["now"]
    async with Receiver(free_port(), then=503).running() as failing:
        await notifier.subscribe(
            channel="sms", address="13800001234", quiet_hours={"start": "22:00", "end": "07:00"}
        )
        await notifier.subscribe(channel="webhook", address=failing.url)
        event = received()
        await notifier.publisher.publish(event)
        # Quiet hours are looked at again every 300 ms here: let a dozen cycles pass. On main
        # every cycle multiplied the event by five (1, 5, 25, 125 …), each copy POSTing again.
        start = handled(event) + handled(event, "retried")
        await wait_for(
            lambda: handled(event) + handled(event, "retried") >= start + 12, "12 cycles"
        )
        await asyncio.sleep(1)
        posts_at_night = len(failing.calls)
        clock["now"] += timedelta(hours=9)  # 08:00 in Beijing

        async def sms_sent() -> list[dict[str, Any]] | None:
            rows = await notifier.deliveries(event.subject)
            return rows if any(r["status"] == "delivered" for r in rows) else None

        await wait_for(sms_sent, "the SMS after the quiet hours")
        rounds = handled(event) + handled(event, "retried")
        await asyncio.sleep(2)  # nothing is left going round
        assert handled(event) + handled(event, "retried") == rounds

        parked = await wait_for(notifier.parked, "the event parked after the quiet hours")
        # Read once parked: when the SMS had gone, the webhook's last try could still be on
        # its way (``sending``).
        rows = await notifier.deliveries(event.subject)

    # At night the failing webhook is tried until it has failed max_attempts times; the round
    # after the quiet hours tries it once more, then the event is parked with the reason.
    assert posts_at_night == notifier.settings.max_attempts
    assert len(failing.calls) == notifier.settings.max_attempts + 1
    assert [p["message_id"] for p in parked] == [event.id]
    assert len(notifier.gateway.calls) == 1  # the held SMS, once
    assert sorted((r["channel"], r["status"]) for r in rows) == [
        ("sms", "delivered"),
        ("webhook", "failed"),
    ]
