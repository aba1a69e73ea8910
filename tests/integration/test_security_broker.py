"""Broker privileges (hole 9 of issue 13, docs/security.md) on the real RabbitMQ: a service's
credentials publish only its own routing keys and configure only its own queues, and a
department that stops consuming fills a bounded queue whose overflow is kept, not lost."""

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel

from shared import broker_admin, topology
from shared.events import (
    AssignmentSigned,
    CaseClosed,
    CloudEvent,
    NotificationDelivered,
    utcnow,
)
from shared.messaging import EventBus
from shared.settings import SERVICES, Settings

from .test_notification_departments import _refused


def forged_closing() -> CloudEvent:
    closed = CaseClosed(
        opinion_id="op-1",
        office_id="office-a",
        tracking_no="SQ-2026-000001",
        outcome="满意",
        closed_at=utcnow(),
    )
    return CloudEvent.wrap("/forged", closed)


def test_every_event_is_published_by_exactly_one_service() -> None:
    from shared.events import EVENT_TYPES

    publishers = {
        name: sorted(s for s in SERVICES if name in topology.PUBLISHES[s])
        for name in {cls.name for cls in EVENT_TYPES.values()}
    }
    assert all(publishers.values()), [name for name, found in publishers.items() if not found]
    # The one event two services send: 改派 (routing) and 并案 (followup) both end assignments.
    shared = {name: found for name, found in publishers.items() if len(found) > 1}
    assert shared == {"opinion.withdrawn": ["followup", "routing"]}


@pytest.fixture
def code(settings: Settings) -> Iterator[str]:
    made = f"transport-{uuid.uuid4().hex[:6]}"
    yield made
    broker_admin.revoke_department(settings, made)


async def test_hole_09_broker_privileges(
    isolated: Settings, make_bus: Callable[[str], EventBus], code: str
) -> None:
    user, password = isolated.amqp_user("notification"), isolated.amqp_passwords["notification"]

    async def forge(channel: AbstractChannel) -> None:
        events = await channel.get_exchange(topology.EVENTS.name, ensure=False)
        event = forged_closing()
        await events.publish(aio_pika.Message(event.model_dump_json().encode()), "case.closed")

    async def delete_exchange(channel: AbstractChannel) -> None:
        await channel.exchange_delete(topology.EVENTS.name)

    async def into_followup(channel: AbstractChannel) -> None:
        internal = await channel.get_exchange(topology.INTERNAL.name, ensure=False)
        event = forged_closing()
        body = aio_pika.Message(event.model_dump_json().encode())
        await internal.publish(body, routing_key=topology.work_queue_name("followup"))

    async def spy(channel: AbstractChannel) -> None:
        queue = await channel.declare_queue("minyi.notification.spy", auto_delete=True)
        await queue.bind(topology.INTERNAL.name, routing_key="minyi.followup")

    assert "access to topic 'case.closed'" in await _refused(isolated, user, password, forge)
    assert "access to exchange 'minyi.events'" in await _refused(
        isolated, user, password, delete_exchange
    )
    assert "access to topic 'minyi.followup'" in await _refused(
        isolated, user, password, into_followup
    )
    assert "access to topic 'minyi.followup'" in await _refused(isolated, user, password, spy)
    # Its own events still go out.
    notification = make_bus("notification")
    await notification.start()
    delivered = NotificationDelivered(
        opinion_id="op-1",
        office_id="office-a",
        recipient="office:office-a",
        channel="webhook",
        source_event_id="e1",
        source_event_type="minyi.case.closed.v1",
        delivery_id="d1",
    )
    await notification.publish(CloudEvent.wrap("/minyi/notification", delivered))

    # A department that stops consuming: its queue holds at most N, the oldest move on to the
    # overflow queue (bounded too), where the administrator sees and can replay them.
    bounded = isolated.model_copy(update={"department_queue_max_length": 5})
    broker_admin.provision_department(bounded, code)
    followup = make_bus("followup")
    await followup.start()
    sent = [
        CloudEvent.wrap(
            "/test",
            AssignmentSigned(
                opinion_id=f"op-{i}", department=code, office_id="office-a", signed_at=utcnow()
            ),
        )
        for i in range(8)
    ]
    for event in sent:
        await followup.publish(event)
    admin = f"amqp://guest:guest@{isolated.amqp_host}:{isolated.amqp_port}/{isolated.amqp_vhost}"
    connection = await aio_pika.connect(admin)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(topology.department_queue_name(code), passive=True)
        overflow_name = topology.department_overflow_queue_name()
        for _ in range(50):
            overflow = await channel.declare_queue(overflow_name, passive=True)
            if overflow.declaration_result.message_count == 3:
                break
            await asyncio.sleep(0.1)
        queue = await channel.declare_queue(topology.department_queue_name(code), passive=True)
        kept = queue.declaration_result.message_count
        moved = await overflow.get(timeout=5)
    assert (kept, overflow.declaration_result.message_count) == (5, 3)
    assert moved.message_id == sent[0].id  # the oldest, saying where it came from
    deaths: Any = moved.headers["x-death"]
    [death] = deaths
    assert death["queue"] == topology.department_queue_name(code)
    assert death["routing-keys"] == [f"assignment.signed.{code}"]
