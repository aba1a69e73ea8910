"""Publishing and consuming domain events with the delivery guarantees of the architecture:
publisher confirms, persistent messages, unroutable publishes raise, explicit prefetch,
retry with backoff through TTL wait queues, and a parking lot for what cannot be handled."""

import asyncio
import functools
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aio_pika import RobustConnection
from faststream import AckPolicy
from faststream.message import StreamMessage
from faststream.rabbit import RabbitBroker, RabbitQueue
from faststream.rabbit.annotations import RabbitMessage
from faststream.rabbit.schemas import Channel
from pydantic import ValidationError
from yarl import URL

from shared import topology
from shared.events import CE_CONTENT_TYPE, CloudEvent, UnknownEventType, utcnow
from shared.observability import (
    EVENTS_HANDLED,
    EVENTS_PUBLISHED,
    HANDLER_SECONDS,
    QUEUE_LAG_SECONDS,
)
from shared.settings import Settings

ATTEMPT_HEADER = "x-minyi-attempt"
REASON_HEADER = "x-minyi-reason"
ROUTING_KEY_HEADER = "x-minyi-routing-key"
# How long a publish waits for aio-pika to reopen the channel after a reconnect (measured:
# ~0.1 s after the connection is back) before it fails like any other unconfirmed publish.
CHANNEL_REOPEN_SECONDS = 5.0

EventHandler = Callable[[CloudEvent], Awaitable[None]]

log = logging.getLogger("minyi.messaging")


class PermanentFailure(Exception):
    """Retrying cannot help (bad data, unknown reference): park the message with this reason."""


class Busy(Exception):
    """Another consumer or writer holds this work right now: look again shortly. Not a
    failure, so it does not use up an attempt; the holder's claim lease bounds the wait."""


async def raw_body(message: StreamMessage[Any]) -> bytes:
    # Decode ourselves so a malformed body reaches our code and is parked with a reason.
    return message.body


class FailoverConnection(RobustConnection):
    """aio-pika's robust connection over the nodes of a broker cluster: every attempt to
    connect, the first and each reconnect, goes to the next node in turn. A process that loses
    its node is on another one after aio-pika's reconnect interval; its channels, queues and
    consumers are restored there (quorum queues live on every node)."""

    def __init__(self, url: URL, nodes: Sequence[URL] = (), **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self._nodes = itertools.cycle(nodes or [url])

    async def _RobustConnection__connect_transport(self) -> None:
        # aio-pika's one connection attempt (RobustConnection.__connect_transport), which
        # dials self.url: point it at the next node first.
        self.url = next(self._nodes)
        log.info("connecting to broker node %s:%s", self.url.host, self.url.port)
        await super()._RobustConnection__connect_transport()  # type: ignore[misc]


class EventBus:
    """One service's connection to the event exchange."""

    def __init__(self, service: str, settings: Settings) -> None:
        self.service = service
        self.settings = settings
        self.source = f"/minyi/{service}"
        self.following: RabbitQueue | None = None
        # The process starts on the first node; over several, it moves on when it loses one.
        urls = settings.amqp_urls(service)
        self.broker = RabbitBroker(
            urls[0],
            # Over several nodes, a node that is down at start is skipped rather than fatal.
            fail_fast=len(urls) == 1,
            # prefetch_count is also FastStream's handler concurrency.
            default_channel=Channel(
                prefetch_count=settings.prefetch, publisher_confirms=True, on_return_raises=True
            ),
            graceful_timeout=30.0,
            logger=logging.getLogger(f"minyi.{service}.broker"),
            log_level=logging.DEBUG,
        )
        if len(urls) > 1:
            # FastStream passes its connection arguments on to aio_pika.connect_robust.
            self.broker._connection_kwargs["connection_class"] = functools.partial(
                FailoverConnection, nodes=[URL(u) for u in urls]
            )

    async def start(self) -> None:
        await self.broker.connect()
        await topology.declare(self.broker, self.service, self.settings, self.following)
        await self.broker.start()

    async def stop(self) -> None:
        """Stop consuming and wait for in-flight handlers (graceful drain)."""
        await self.broker.stop()

    async def ping(self) -> bool:
        return await self.broker.ping(timeout=2.0)

    async def _channel_open(self) -> None:
        # The connection is reported back before its channels are reopened; a publish in
        # between would fail at once on the closed channel.
        channel = self.broker._channel
        if channel is not None and channel.is_closed:
            await asyncio.wait_for(channel.ready(), CHANNEL_REOPEN_SECONDS)

    async def publish(self, event: CloudEvent) -> None:
        """Publish persistently and wait for the broker's confirm; raises if unroutable.
        After a reconnect, waits (briefly) for the channel to be reopened first."""
        await self._channel_open()
        await self.broker.publish(
            event.model_dump_json().encode(),
            exchange=topology.EVENTS,
            routing_key=event.routing_key(),
            persist=True,
            mandatory=True,
            message_id=event.id,
            content_type=CE_CONTENT_TYPE,
            timestamp=event.time,
        )
        EVENTS_PUBLISHED.labels(self.service, event.type).inc()

    async def send_internal(
        self, body: bytes, routing_key: str, message_id: str | None, headers: dict[str, Any]
    ) -> None:
        """Publish a raw message to a queue of the internal (dead-letter) exchange by name."""
        await self._channel_open()
        await self.broker.publish(
            body,
            exchange=topology.INTERNAL,
            routing_key=routing_key,
            persist=True,
            mandatory=True,
            message_id=message_id,
            content_type=CE_CONTENT_TYPE,
            headers=headers,
        )

    def consume(self, handler: EventHandler) -> None:
        """Run ``handler`` for every event on this service's work queue."""
        queue = topology.work_queue(self.service, self.settings)

        @self.broker.subscriber(queue, decoder=raw_body, ack_policy=AckPolicy.NACK_ON_ERROR)
        async def on_message(body: bytes, message: RabbitMessage) -> None:
            await self._handle(handler, body, message)

    def follow(self, handler: EventHandler) -> None:
        """Run ``handler`` in this process for every event of ``topology.FOLLOWS[service]``,
        whichever replica handles it on the work queue. For in-memory state only: a failure is
        logged and the event dropped (the state is rebuilt from the store at start)."""
        self.following = topology.follow_queue(self.service, uuid.uuid4().hex[:12])

        @self.broker.subscriber(self.following, decoder=raw_body)
        async def on_message(body: bytes) -> None:
            try:
                await handler(CloudEvent.model_validate_json(body))
            except Exception:
                log.exception("follow handler failed; event dropped for this process")

    async def _handle(self, handler: EventHandler, body: bytes, message: RabbitMessage) -> None:
        headers = dict(message.headers or {})
        # Retries come back through the dead-letter exchange; keep the original routing key.
        headers.setdefault(ROUTING_KEY_HEADER, message.raw_message.routing_key)
        attempt = int(headers.get(ATTEMPT_HEADER, 0)) + 1
        try:
            event = CloudEvent.model_validate_json(body)
            event.payload()
        except (ValidationError, UnknownEventType) as exc:
            await self._park(body, message, headers, f"malformed event: {_short(exc)}", "?")
            return
        ctx = {"event_id": event.id, "event_type": event.type, "opinion_id": event.subject}
        QUEUE_LAG_SECONDS.labels(self.service).observe((utcnow() - event.time).total_seconds())
        started = time.perf_counter()
        try:
            await handler(event)
        except PermanentFailure as exc:
            await self._park(body, message, headers, _short(exc), event.type)
            return
        except Busy as exc:
            delay = self.settings.retry_delays_ms[0]
            log.info("%s; looking again in %d ms", exc, delay, extra=ctx)
            await self._wait(body, message, headers, delay)
            EVENTS_HANDLED.labels(self.service, event.type, "busy").inc()
            return
        except Exception as exc:
            if attempt >= self.settings.max_attempts:
                reason = f"failed {attempt} times, last: {_short(exc)}"
                await self._park(body, message, headers, reason, event.type)
                return
            delays = self.settings.retry_delays_ms
            delay = delays[min(attempt, len(delays)) - 1]
            log.warning(
                "handler failed, retrying in %d ms",
                delay,
                exc_info=True,
                extra={**ctx, "attempt": attempt},
            )
            headers[ATTEMPT_HEADER] = attempt
            await self._wait(body, message, headers, delay)
            EVENTS_HANDLED.labels(self.service, event.type, "retried").inc()
            return
        finally:
            HANDLER_SECONDS.labels(self.service, event.type).observe(time.perf_counter() - started)
        EVENTS_HANDLED.labels(self.service, event.type, "ok").inc()
        log.info("handled %s", event.type, extra=ctx)

    async def _wait(
        self, body: bytes, message: RabbitMessage, headers: dict[str, Any], delay: int
    ) -> None:
        """Send the message round again through the wait queue of ``delay`` ms."""
        wait = topology.wait_queue_name(self.service, delay)
        await self.send_internal(body, wait, message.message_id, headers)

    async def _park(
        self,
        body: bytes,
        message: RabbitMessage,
        headers: dict[str, Any],
        reason: str,
        event_type: str,
    ) -> None:
        headers[REASON_HEADER] = reason
        parking = topology.parking_queue_name(self.service)
        await self.send_internal(body, parking, message.message_id, headers)
        EVENTS_HANDLED.labels(self.service, event_type, "parked").inc()
        log.error("parked message", extra={"reason": reason, "event_id": message.message_id})


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]
