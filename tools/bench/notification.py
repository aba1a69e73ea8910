"""``minyi bench notification``: webhook deliveries per second through the whole path (event on
RabbitMQ → notification consumer → claim and record in the store → signed POST), against a
baseline measured in the same run: the same number of signed POSTs sent directly.

Runs the notification consumer in this process, in a vhost and databases of its own, against
the local RabbitMQ and document store; the receiver listens on ``MINYI_BENCH_PORT``."""

import asyncio
import os
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from services.notification import handlers
from services.notification.config import ChannelSettings
from services.notification.domain import ChannelKind, signature
from services.notification.main import create_app
from shared import broker_admin
from shared.events import CloudEvent, Location, OpinionReceived, utcnow
from shared.messaging import EventBus
from shared.settings import Settings, get_settings
from shared.store import mongo_client
from tools.demo import WebhookSink, wait_for

OFFICE = "bench-office"


def _event(i: int) -> CloudEvent:
    return CloudEvent.wrap(
        "/bench",
        OpinionReceived(
            opinion_id=f"bench-{i}",
            tracking_no=f"SQ-2026-{i:06d}",
            office_id=OFFICE,
            title="基准测试意见",
            content="内容，联系电话 13800001234。",
            channel="网络",
            submitter_kind="群众",
            location=Location(district="示范区"),
            received_at=utcnow(),
        ),
    )


async def _direct_posts(
    sink: WebhookSink, secret: str, events: list[CloudEvent], limit: int
) -> float:
    """Seconds to POST every event, signed, with ``limit`` at a time (the consumer's prefetch)."""
    gate = asyncio.Semaphore(limit)
    async with httpx.AsyncClient(timeout=10) as http:

        async def post(event: CloudEvent) -> None:
            body = event.model_dump_json().encode()
            headers = {
                "Content-Type": "application/cloudevents+json",
                "X-Minyi-Delivery": event.id,
                "X-Minyi-Signature": signature(secret, int(time.time()), body),
            }
            async with gate:
                (await http.post(sink.url, content=body, headers=headers)).raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(post(e) for e in events))
        return time.perf_counter() - started


async def _through_the_service(
    settings: Settings, sink: WebhookSink, events: list[CloudEvent]
) -> float:
    """Seconds from the first publish until every event reached the sink through the service."""
    app = create_app(settings, ChannelSettings())
    async with app.router.lifespan_context(app):
        ports: handlers.NotificationPorts = app.state.ports
        subscription = await handlers.subscribe(
            ports,
            f"office:{OFFICE}",
            ChannelKind.WEBHOOK,
            sink.url,
            [],
            None,
            secrets.token_hex(16),
        )
        sink.secrets.append(subscription.secret)
        publisher = EventBus("intake", settings)
        await publisher.start()
        try:
            before = len(sink.received)
            started = time.perf_counter()
            for event in events:
                await publisher.publish(event)
            await wait_for(
                lambda: len(sink.received) >= before + len(events), "all deliveries", within=600
            )
            return time.perf_counter() - started
        finally:
            await publisher.stop()


async def _run(count: int, port: int) -> dict[str, Any]:
    base = get_settings()
    run = uuid.uuid4().hex[:6]
    settings = base.model_copy(
        update={"amqp_vhost": f"minyi-bench-{run}", "db_prefix": f"bench{run}"}
    )
    broker_admin.setup(settings)
    sink = WebhookSink(port)
    try:
        async with sink.running():
            baseline_secret = secrets.token_hex(16)
            sink.secrets.append(baseline_secret)
            direct = await _direct_posts(
                sink, baseline_secret, [_event(i) for i in range(count)], settings.prefetch
            )
            service = await _through_the_service(settings, sink, [_event(i) for i in range(count)])
    finally:
        broker_admin.delete_vhost(settings)
        mongo = mongo_client(settings)
        await mongo.drop_database(settings.database("notification"))
        await mongo.close()
    return {
        "events": count,
        "direct_posts_per_second": round(count / direct, 1),
        "deliveries_per_second": round(count / service, 1),
        "ratio_to_direct_posts": round(direct / service, 3),
        "all_signatures_valid": all(r.valid_signature for r in sink.received),
        "received": len(sink.received),
    }


def run(output: Path) -> dict[str, Any]:
    """Benchmark entry point (see ``BENCHMARKS`` in tools/cli.py)."""
    count = int(os.environ.get("MINYI_BENCH_EVENTS", "300"))
    port = int(os.environ.get("MINYI_BENCH_PORT", "8097"))
    return asyncio.run(_run(count, port))
