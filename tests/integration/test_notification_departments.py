"""A department's own AMQP subscription on the real RabbitMQ: it consumes its own events and
RabbitMQ refuses everything else."""

import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

import aio_pika
import httpx
import pytest
from aio_pika.abc import AbstractChannel
from aiormq.exceptions import ChannelAccessRefused
from typer.testing import CliRunner

from shared import broker_admin
from shared.events import CloudEvent, OpinionAssigned
from shared.messaging import EventBus
from shared.settings import Settings, get_settings
from tools.cli import app as cli


def assigned(department: str) -> CloudEvent:
    return CloudEvent.wrap(
        "/test",
        OpinionAssigned(
            opinion_id=f"op-{department}",
            department=department,
            tracking_no="SQ-2026-000001",
            office_id="office-a",
            title="小区供水压力不足",
            department_name=department,
            role="lead",
            category="供水",
            urgency="timeliness",
            explanation="测试",
            received_at=datetime.now(UTC),
        ),
    )


def _url(settings: Settings, user: str, password: str) -> str:
    vhost = quote(settings.amqp_vhost, safe="")
    return f"amqp://{user}:{password}@{settings.amqp_host}:{settings.amqp_port}/{vhost}"


async def _refused(
    settings: Settings,
    user: str,
    password: str,
    attempt: Callable[[AbstractChannel], Awaitable[None]],
) -> str:
    """Run ``attempt(channel)`` as ``user``; return RabbitMQ's refusal."""
    connection = await aio_pika.connect(_url(settings, user, password))
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        with pytest.raises(ChannelAccessRefused) as refusal:
            await attempt(channel)
    return str(refusal.value)


@pytest.fixture
def codes(settings: Settings) -> Iterator[tuple[str, str]]:
    """Two department codes of this test only: RabbitMQ users are broker-wide."""
    run = uuid.uuid4().hex[:6]
    made = (f"housing-{run}", f"education-{run}")
    yield made
    for code in made:
        broker_admin.revoke_department(settings, code)


async def test_department_reads_its_own_events_and_nothing_else(
    isolated: Settings, make_bus: Callable[[str], EventBus], codes: tuple[str, str]
) -> None:
    own, other = codes
    housing = broker_admin.provision_department(isolated, own)
    broker_admin.provision_department(isolated, other)
    assert housing.password is not None
    # Provisioning again changes nothing and keeps the password.
    assert broker_admin.provision_department(isolated, own).password is None

    routing = make_bus("routing")
    await routing.start()
    mine, theirs = assigned(own), assigned(other)
    await routing.publish(mine)
    await routing.publish(theirs)

    connection = await aio_pika.connect(_url(isolated, housing.user, housing.password))
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(housing.queue, ensure=False)
        message = await queue.get(timeout=10)
        await message.ack()
        rest = await queue.get(fail=False)
    event = json.loads(message.body)
    assert message.message_id == mine.id
    assert message.content_type == "application/cloudevents+json"
    assert (event["type"], event["data"]["department"]) == ("minyi.opinion.assigned.v1", own)
    assert rest is None

    async def bind_other(channel: AbstractChannel) -> None:
        queue = await channel.get_queue(housing.queue, ensure=False)
        await queue.bind("minyi.events", routing_key=f"opinion.assigned.{other}")

    async def read_other(channel: AbstractChannel) -> None:
        queue = await channel.get_queue(f"minyi.dept.{other}", ensure=False)
        await queue.get(fail=False)

    async def publish(channel: AbstractChannel) -> None:
        events = await channel.get_exchange("minyi.events", ensure=False)
        await events.publish(aio_pika.Message(b"{}"), routing_key=f"assignment.signed.{own}")

    async def declare(channel: AbstractChannel) -> None:
        await channel.declare_queue(f"{housing.queue}.mine", durable=True)

    def refused(attempt: Callable[[AbstractChannel], Awaitable[None]]) -> Awaitable[str]:
        assert housing.password is not None
        return _refused(isolated, housing.user, housing.password, attempt)

    assert f"access to queue '{housing.queue}'" in await refused(bind_other)
    assert f"access to queue 'minyi.dept.{other}'" in await refused(read_other)
    assert "access to exchange 'minyi.events'" in await refused(publish)
    assert "ACCESS_REFUSED" in await refused(declare)

    # Defence in depth: even if its vhost permissions were widened so it may bind its queue,
    # the topic permission still confines it to keys ending with its code.
    vhost = quote(isolated.amqp_vhost, safe="")
    wider = {
        "configure": "^$",
        "write": f"^{re.escape(housing.queue)}$",
        "read": rf"^({re.escape(housing.queue)}|minyi\.events)$",
    }
    admin = urlsplit(isolated.rabbit_admin_url)
    async with httpx.AsyncClient(
        base_url=f"{admin.scheme}://{admin.hostname}:{admin.port}",
        auth=(admin.username or "guest", admin.password or "guest"),
    ) as http:
        response = await http.put(f"/api/permissions/{vhost}/{housing.user}", json=wider)
        response.raise_for_status()
    refusal = await refused(bind_other)
    assert f"access to topic 'opinion.assigned.{other}' in exchange 'minyi.events'" in refusal


def test_provision_command_prints_the_password_once_and_checks_the_code(
    settings: Settings, codes: tuple[str, str]
) -> None:
    get_settings.cache_clear()  # the CLI reads this run's vhost from the environment
    code = codes[0]
    runner = CliRunner()
    first = runner.invoke(cli, ["departments", "provision", code])
    again = runner.invoke(cli, ["departments", "provision", code])
    bad = runner.invoke(cli, ["departments", "provision", "Water Bureau"])

    assert first.exit_code == 0, first.output
    assert f"queue minyi.dept.{code} bound to *.*.{code}" in first.output
    assert "password (shown once):" in first.output
    assert again.exit_code == 0 and "password unchanged" in again.output
    assert bad.exit_code == 2
    assert "department code 'Water Bureau' must match" in bad.output
