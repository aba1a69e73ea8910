"""The four services as real processes on test ports, against the real broker and store."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import aio_pika
import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from shared import auth, broker_admin, topology
from shared.settings import SERVICES, Settings
from shared.store import Document, mongo_client
from tools.demo import WebhookSink

# Several test runs can share a machine: each sets its own MINYI_TEST_PORT_BASE.
PORT_BASE = int(os.environ.get("MINYI_TEST_PORT_BASE", "18000"))
PORTS = {service: PORT_BASE + 1 + i for i, service in enumerate(SERVICES)}
# The console in front of them (started with them: it needs nothing else).
PORTS["console"] = PORT_BASE + 20
STARTED = (*SERVICES, "console")
SINK_PORT = PORT_BASE + 99
LOGS = Path(f"var/log/tests-{PORT_BASE}")


@dataclass
class System:
    settings: Settings
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, service: str) -> str:
        """``service`` or ``<service>-2`` (its second replica, on the port 10 above)."""
        name, _, replica = service.partition("-")
        return f"http://127.0.0.1:{PORTS[name] + (10 if replica else 0)}"

    def start(self, service: str) -> None:
        """Start ``service`` or ``<service>-2``; stopped with the others after the session."""
        LOGS.mkdir(parents=True, exist_ok=True)
        log = (LOGS / f"{service}.log").open("ab")
        port = self.url(service).rsplit(":", 1)[1]
        name = service.partition("-")[0]
        self.processes[service] = subprocess.Popen(
            [sys.executable, "-m", "tools.cli", "serve", name, "--port", port],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )

    def wait_ready(self, services: tuple[str, ...] = STARTED, within: float = 60) -> None:
        deadline = time.monotonic() + within
        for service in services:
            while True:
                if self.processes[service].poll() is not None:
                    pytest.fail(f"{service} exited; see {LOGS / service}.log")
                try:
                    if httpx.get(f"{self.url(service)}/ready", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"{service} not ready; see {LOGS / service}.log")
                time.sleep(0.2)

    def kill(self, service: str) -> None:
        """SIGKILL: no drain, no cleanup — as a crash."""
        process = self.processes[service]
        process.send_signal(signal.SIGKILL)
        process.wait()

    def restart(self, service: str) -> None:
        self.start(service)
        self.wait_ready((service,))

    def stop_all(self) -> None:
        stop(self.processes.values())


def stop(processes: Iterable[subprocess.Popen[bytes]]) -> None:
    """Terminate the processes; kill those still running after 30 s."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@contextlib.asynccontextmanager
async def own_run(
    settings: Settings, tag: str
) -> AsyncIterator[tuple[Settings, AsyncDatabase[Document]]]:
    """A vhost and databases of their own (named with ``tag``) for the processes a test module
    starts, and their auth database to make keys in; all removed afterwards."""
    run = uuid.uuid4().hex[:6]
    own = settings.model_copy(
        update={
            "amqp_vhost": f"{settings.amqp_vhost}-{tag}{run}",
            "db_prefix": f"{settings.db_prefix}{tag}{run}",
        }
    )
    broker_admin.setup(own)
    mongo = mongo_client(own)
    try:
        yield own, mongo[own.database(auth.AUTH_DB)]
    finally:
        for name in await mongo.list_database_names():
            if name.startswith(own.db_prefix + "_"):
                await mongo.drop_database(name)
        await mongo.close()
        broker_admin.delete_vhost(own)


@pytest.fixture(scope="session")
def system(settings: Settings) -> Iterator[System]:
    running = System(settings)
    os.environ["MINYI_CONSOLE_UPSTREAMS"] = json.dumps({s: running.url(s) for s in SERVICES})
    for service in STARTED:
        running.start(service)
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop_all()


@dataclass
class Keys:
    office: str
    other_office: str
    supervisor: str
    departments: dict[str, str]

    @staticmethod
    def header(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="session")
async def keys(settings: Settings) -> AsyncIterator[Keys]:
    from services.routing.domain import DEPARTMENTS

    client = mongo_client(settings)
    db = client[settings.database(auth.AUTH_DB)]
    made = Keys(
        office=await auth.create_key(db, auth.Role.OFFICE, "office-a", "测试办公室甲"),
        other_office=await auth.create_key(db, auth.Role.OFFICE, "office-b", "测试办公室乙"),
        supervisor=await auth.create_key(db, auth.Role.SUPERVISOR, "supervisor", "督查室"),
        departments={
            code: await auth.create_key(db, auth.Role.DEPARTMENT, code, d.name)
            for code, d in DEPARTMENTS.items()
        },
    )
    await client.close()
    yield made


@pytest.fixture(scope="session")
async def sink(system: System, keys: Keys) -> AsyncIterator[WebhookSink]:
    """The test office's webhook receiver, subscribed to every event addressed to it."""
    receiver = WebhookSink(SINK_PORT)
    async with receiver.running():
        async with httpx.AsyncClient() as http:
            response = await http.post(
                f"{system.url('notification')}/subscriptions/webhooks",
                headers=Keys.header(keys.office),
                json={"url": receiver.url},
            )
        assert response.status_code == 201, response.text
        receiver.secrets.append(response.json()["secret"])
        yield receiver


@pytest.fixture(scope="session")
async def editor_key(settings: Settings) -> str:
    """A key of the editing staff (登记、分类、编辑): reads all opinions, merges, splits, edits."""
    client = mongo_client(settings)
    try:
        db = client[settings.database(auth.AUTH_DB)]
        return await auth.create_key(db, auth.Role.EDITOR, "editor", "编辑甲")
    finally:
        await client.close()


# The personal-data scan looks at everything the run produced: it goes last.
LAST_MODULE = "test_personal_data.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name == LAST_MODULE)


@dataclass
class Traffic:
    """What the run sent: every event on the run's exchange (raw bodies), and where each
    service log stood when it began, so only this run's lines are read."""

    events: list[bytes] = field(default_factory=list)
    log_starts: dict[Path, int] = field(default_factory=dict)

    def log_lines(self) -> dict[Path, str]:
        found = {}
        for path in sorted(LOGS.glob("*.log")):
            with path.open("rb") as log:
                log.seek(self.log_starts.get(path, 0))
                found[path] = log.read().decode(errors="replace")
        return found


async def capture_events(
    settings: Settings, keep: Callable[[bytes], None]
) -> tuple[aio_pika.abc.AbstractRobustConnection, aio_pika.abc.AbstractChannel]:
    """A connection to the settings' vhost (as the broker administrator) and a channel whose
    own queue, bound to every event, hands each message body to ``keep``."""
    admin = urlsplit(settings.rabbit_admin_url)
    connection = await aio_pika.connect_robust(
        f"amqp://{admin.username}:{admin.password}@{settings.amqp_host}:{settings.amqp_port}/"
        f"{quote(settings.amqp_vhost, safe='')}"
    )
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        topology.EVENTS.name, aio_pika.ExchangeType.TOPIC, durable=True
    )
    capture = await channel.declare_queue(exclusive=True)
    await capture.bind(exchange, routing_key="#")

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            keep(message.body)

    await capture.consume(on_message)
    return connection, channel


def _log_sizes() -> dict[Path, int]:
    return {path: path.stat().st_size for path in LOGS.glob("*.log")}


@pytest.fixture(scope="session", autouse=True)
async def traffic(settings: Settings) -> AsyncIterator[Traffic]:
    """Captures every event of the run from the first e2e test on (see test_personal_data)."""
    seen = Traffic(log_starts=_log_sizes())
    connection, _ = await capture_events(settings, seen.events.append)
    try:
        yield seen
    finally:
        await connection.close()
