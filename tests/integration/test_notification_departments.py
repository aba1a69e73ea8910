"""A department's own AMQP subscription on the real RabbitMQ: it consumes its own events and
RabbitMQ refuses everything else."""

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

import aio_pika
import httpx
import pytest
from aio_pika.abc import AbstractChannel
from aiormq.exceptions import ChannelAccessRefused
from typer.testing import CliRunner

from services.cli import app as cli
from shared import broker_admin
from shared.events import CloudEvent, OpinionAssigned
from shared.messaging import EventBus
from shared.settings import Settings, get_settings


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
    settings: Settings, password: str, attempt: Callable[[AbstractChannel], Awaitable[None]]
) -> str:
    """Run ``attempt(channel)`` as the housing department; return RabbitMQ's refusal."""
    connection = await aio_pika.connect(_url(settings, "minyi-dept-housing", password))
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        with pytest.raises(ChannelAccessRefused) as refusal:
            await attempt(channel)
    return str(refusal.value)


async def test_department_reads_its_own_events_and_nothing_else(
    isolated: Settings, make_bus: Callable[[str], EventBus]
) -> None:
    housing = broker_admin.provision_department(isolated, "housing")
    broker_admin.provision_department(isolated, "education")
    assert housing.password is not None
    # Provisioning again changes nothing and keeps the password.
    assert broker_admin.provision_department(isolated, "housing").password is None

    routing = make_bus("routing")
    await routing.start()
    mine, theirs = assigned("housing"), assigned("education")
    await routing.publish(mine)
    await routing.publish(theirs)

    connection = await aio_pika.connect(_url(isolated, housing.user, housing.password))
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue("minyi.dept.housing", ensure=False)
        message = await queue.get(timeout=10)
        await message.ack()
        rest = await queue.get(fail=False)
    event = json.loads(message.body)
    assert message.message_id == mine.id
    assert message.content_type == "application/cloudevents+json"
    assert (event["type"], event["data"]["department"]) == ("minyi.opinion.assigned.v1", "housing")
    assert rest is None

    async def bind_other(channel: AbstractChannel) -> None:
        queue = await channel.get_queue("minyi.dept.housing", ensure=False)
        await queue.bind("minyi.events", routing_key="opinion.assigned.education")

    async def read_other(channel: AbstractChannel) -> None:
        queue = await channel.get_queue("minyi.dept.education", ensure=False)
        await queue.get(fail=False)

    async def publish(channel: AbstractChannel) -> None:
        events = await channel.get_exchange("minyi.events", ensure=False)
        await events.publish(aio_pika.Message(b"{}"), routing_key="assignment.signed.housing")

    async def declare(channel: AbstractChannel) -> None:
        await channel.declare_queue("minyi.dept.housing.mine", durable=True)

    key = housing.password
    assert "access to queue 'minyi.dept.housing'" in await _refused(isolated, key, bind_other)
    assert "access to queue 'minyi.dept.education'" in await _refused(isolated, key, read_other)
    assert "access to exchange 'minyi.events'" in await _refused(isolated, key, publish)
    assert "ACCESS_REFUSED" in await _refused(isolated, key, declare)

    # Defence in depth: even if its vhost permissions were widened so it may bind its queue,
    # the topic permission still confines it to keys ending with its code.
    vhost = quote(isolated.amqp_vhost, safe="")
    wider = {
        "configure": "^$",
        "write": r"^minyi\.dept\.housing$",
        "read": r"^(minyi\.dept\.housing|minyi\.events)$",
    }
    admin = urlsplit(isolated.rabbit_admin_url)
    async with httpx.AsyncClient(
        base_url=f"{admin.scheme}://{admin.hostname}:{admin.port}",
        auth=(admin.username or "guest", admin.password or "guest"),
    ) as http:
        response = await http.put(f"/api/permissions/{vhost}/{housing.user}", json=wider)
        response.raise_for_status()
    refusal = await _refused(isolated, key, bind_other)
    assert "access to topic 'opinion.assigned.education' in exchange 'minyi.events'" in refusal


def test_provision_command_prints_the_password_once_and_checks_the_code(
    settings: Settings,
) -> None:
    get_settings.cache_clear()  # the CLI reads this run's vhost from the environment
    runner = CliRunner()
    first = runner.invoke(cli, ["departments", "provision", "water"])
    again = runner.invoke(cli, ["departments", "provision", "water"])
    bad = runner.invoke(cli, ["departments", "provision", "Water Bureau"])

    assert first.exit_code == 0, first.output
    assert "queue minyi.dept.water bound to *.*.water" in first.output
    assert "password (shown once):" in first.output
    assert again.exit_code == 0 and "password unchanged" in again.output
    assert bad.exit_code == 2
    assert "department code 'Water Bureau' must match" in bad.output
