"""Delivery guarantees on the real RabbitMQ: queue arguments, confirms, unroutable publishes,
retry with backoff, parking with a reason, replay."""

import asyncio
import itertools
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from aiormq.exceptions import PublishError

from shared import broker_admin
from shared.events import CloudEvent, Location, OpinionReceived
from shared.messaging import Busy, EventBus, PermanentFailure
from shared.settings import Settings
from shared.store import VersionConflict
from tools.demo import wait_for


def received(title: str) -> CloudEvent:
    data = OpinionReceived(
        opinion_id=f"op-{title}",
        tracking_no="SQ-2026-000001",
        office_id="office-a",
        title=title,
        content="内容",
        channel="热线",
        submitter_kind="群众",
        location=Location(district="示范区"),
        received_at=datetime.now(UTC),
    )
    return CloudEvent.wrap("/test", data)


async def test_work_queue_is_quorum_with_dead_lettering_and_delivery_limit(
    isolated: Settings, make_bus: Callable[[str], EventBus]
) -> None:
    bus = make_bus("routing")
    await bus.start()
    work = broker_admin.queue_info(isolated, "minyi.routing")
    assert work["durable"] is True
    assert work["arguments"] == {
        "x-queue-type": "quorum",
        "x-overflow": "reject-publish",
        "x-dead-letter-exchange": "minyi.dlx",
        "x-dead-letter-routing-key": "minyi.routing.parking",
        "x-dead-letter-strategy": "at-least-once",
        "x-delivery-limit": isolated.delivery_limit,
    }
    for delay in isolated.retry_delays_ms:
        wait = broker_admin.queue_info(isolated, f"minyi.routing.wait.{delay}")
        assert wait["arguments"]["x-message-ttl"] == delay
        assert wait["arguments"]["x-dead-letter-routing-key"] == "minyi.routing"
    assert broker_admin.queue_info(isolated, "minyi.routing.parking")["type"] == "quorum"


async def test_unroutable_publish_raises(make_bus: Callable[[str], EventBus]) -> None:
    bus = make_bus("intake")  # declares the exchange; no service queue is bound in this vhost
    await bus.start()
    with pytest.raises(PublishError, match="NO_ROUTE"):
        await bus.publish(received("无人接收"))


async def test_failing_handler_is_retried_with_backoff_until_it_succeeds(
    isolated: Settings, make_bus: Callable[[str], EventBus]
) -> None:
    calls: list[float] = []

    async def flaky(event: CloudEvent) -> None:
        calls.append(asyncio.get_running_loop().time())
        if len(calls) < 3:
            raise RuntimeError("store briefly unavailable")

    routing = make_bus("routing")
    routing.consume(flaky)
    await routing.start()
    intake = make_bus("intake")
    await intake.start()
    await intake.publish(received("重试"))

    await wait_for(lambda: len(calls) >= 3, "three attempts")
    gaps = [later - earlier for earlier, later in itertools.pairwise(calls)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4  # the TTL of each wait queue in turn
    await asyncio.sleep(0.5)
    assert len(calls) == 3
    assert await broker_admin.parked("routing", isolated, 10) == []


@pytest.mark.parametrize(
    "held",
    [Busy("being sent by another consumer"), VersionConflict("a claim a killed writer left")],
    ids=["busy", "version-conflict"],
)
async def test_busy_is_looked_at_again_without_using_up_attempts(
    isolated: Settings, make_bus: Callable[[str], EventBus], held: Exception
) -> None:
    calls: list[float] = []
    busy_rounds = isolated.max_attempts + 2

    async def waits_for_another_consumer(event: CloudEvent) -> None:
        calls.append(asyncio.get_running_loop().time())
        if len(calls) <= busy_rounds:
            raise held

    routing = make_bus("routing")
    routing.consume(waits_for_another_consumer)
    await routing.start()
    intake = make_bus("intake")
    await intake.start()
    await intake.publish(received("别人在办"))

    await wait_for(lambda: len(calls) > busy_rounds, "the round after the busy ones")
    gaps = [later - earlier for earlier, later in itertools.pairwise(calls)]
    assert min(gaps) >= isolated.retry_delays_ms[0] / 1000
    await asyncio.sleep(0.5)
    assert len(calls) == busy_rounds + 1
    assert await broker_admin.parked("routing", isolated, 10) == []


async def test_poison_message_is_parked_with_reason_and_the_consumer_goes_on(
    isolated: Settings, make_bus: Callable[[str], EventBus]
) -> None:
    handled: list[str] = []
    broken = True

    async def handler(event: CloudEvent) -> None:
        title = event.data["title"]
        if broken and title == "毒":
            raise RuntimeError("cannot handle this one")
        if broken and title == "坏数据":
            raise PermanentFailure("department unknown")
        handled.append(title)

    routing = make_bus("routing")
    routing.consume(handler)
    await routing.start()
    intake = make_bus("intake")
    await intake.start()
    for title in ("毒", "坏数据", "好"):
        await intake.publish(received(title))

    await wait_for(lambda: handled == ["好"], "the good message")

    async def two_parked() -> list[dict[str, object]] | None:
        found = await broker_admin.parked("routing", isolated, 10)
        return found if len(found) == 2 else None

    parked = {str(p["reason"]).split(",")[0]: p for p in await wait_for(two_parked, "parking")}
    assert set(parked) == {"failed 3 times", "PermanentFailure: department unknown"}
    assert "RuntimeError: cannot handle this one" in str(parked["failed 3 times"]["reason"])
    assert parked["failed 3 times"]["routing_key"] == "opinion.received"

    # Once the cause is fixed, replay puts them back on the work queue.
    broken = False
    assert await broker_admin.replay("routing", isolated, 10) == 2
    await wait_for(lambda: sorted(handled) == sorted(["好", "毒", "坏数据"]), "the replayed ones")
    assert await broker_admin.parked("routing", isolated, 10) == []


async def test_a_bus_over_several_nodes_skips_one_that_is_down(
    isolated: Settings, make_bus: Callable[[str], EventBus]
) -> None:
    """The first node refuses connections (nothing listens on port 1): the bus goes on to the
    next one, starts, and publishes with confirms there."""
    await make_bus("routing").start()  # its queue is where opinion.received goes
    live = f"{isolated.amqp_host}:{isolated.amqp_port}"
    cluster = isolated.model_copy(update={"amqp_nodes": ["127.0.0.1:1", live]})
    bus = EventBus("intake", cluster)  # opinion.received is intake's to publish
    try:
        await asyncio.wait_for(bus.start(), timeout=30)
        assert await bus.ping()
        connection = bus.broker._connection
        assert connection is not None
        assert (connection.url.host, connection.url.port) == ("127.0.0.1", isolated.amqp_port)
        await bus.publish(received("换个节点"))  # routed to minyi.routing, confirmed
    finally:
        await bus.stop()


async def test_a_bus_that_loses_its_node_reconnects_to_the_next_one(
    isolated: Settings, make_bus: Callable[[str], EventBus]
) -> None:
    """Two addresses of the real broker stand for two nodes; the broker closes the bus's
    connection (as a stopping node does): the bus comes back on the other address, and a
    publish made while it does so goes out there."""
    await make_bus("routing").start()
    nodes = [f"127.0.0.1:{isolated.amqp_port}", f"localhost:{isolated.amqp_port}"]
    cluster = isolated.model_copy(update={"amqp_nodes": nodes})
    bus = EventBus("intake", cluster)
    try:
        await asyncio.wait_for(bus.start(), timeout=30)
        connection = bus.broker._connection
        assert connection is not None and connection.url.host == "127.0.0.1"

        def connections() -> list[str]:
            with broker_admin._client(isolated) as http:
                found = http.get(f"/api/vhosts/{isolated.amqp_vhost}/connections")
                mine = isolated.amqp_user("intake")
                return [c["name"] for c in found.raise_for_status().json() if c["user"] == mine]

        (name,) = await wait_for(connections, "the bus's connection to be listed")
        with broker_admin._client(isolated) as http:
            http.delete(f"/api/connections/{name}").raise_for_status()
        await wait_for(lambda: connection.url.host == "localhost", "a reconnect", within=30)
        # At once, while the channel is still being reopened there: the publish waits for it.
        await bus.publish(received("节点停了"))
        assert await bus.ping()
    finally:
        await bus.stop()
