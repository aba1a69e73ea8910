"""In-process tests against the real RabbitMQ and document store, in a vhost of their own so
they never compete with the end-to-end tests' service processes."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from shared import broker_admin, topology
from shared.events import CloudEvent
from shared.messaging import EventBus
from shared.settings import Settings
from shared.store import drop_databases


@pytest.fixture
def isolated(settings: Settings) -> Iterator[Settings]:
    """A fresh vhost and database prefix for one test."""
    run = uuid.uuid4().hex[:6]
    own = settings.model_copy(
        update={
            "amqp_vhost": f"{settings.amqp_vhost}-{run}",
            "db_prefix": f"{settings.db_prefix}{run}",
        }
    )
    broker_admin.setup(own)
    yield own
    broker_admin.delete_vhost(own)
    # Its databases are not the run's (``<run prefix><hex>_…``): the run's cleanup misses them.
    asyncio.run(drop_databases(own))


@pytest.fixture
async def make_bus(isolated: Settings) -> AsyncIterator[Callable[[str], EventBus]]:
    """Make an event bus of a service in the isolated vhost; stopped after the test."""
    made: list[EventBus] = []

    def make(service: str) -> EventBus:
        made.append(EventBus(service, isolated))
        return made[-1]

    yield make
    for bus in made:
        await bus.stop()


class Publishers:
    """Publishes each event as the service that owns it: topic permissions allow no other."""

    def __init__(self, make_bus: Callable[[str], EventBus]) -> None:
        self.make_bus = make_bus
        self.buses: dict[str, EventBus] = {}

    async def publish(self, event: CloudEvent) -> None:
        name = event.payload().name
        service = next(s for s, names in topology.PUBLISHES.items() if name in names)
        if service not in self.buses:
            self.buses[service] = self.make_bus(service)
            await self.buses[service].start()
        await self.buses[service].publish(event)
