"""Broker-node failure drill (`make drill-cluster`): three RabbitMQ nodes of its own on this
machine, clustered, the four services pointed at all three (each starting on another node,
where it declares its queues, so connections and queue leaders are spread); while opinions
flow, stop the node that leads the most work queues, then start it again; then check, as the
chaos drill does (tools/chaos.py), that every opinion was registered, assigned and notified
exactly once.

Its nodes are minyi-drill-{a,b,c}@localhost (AMQP 25101-25103, management 25121-25123,
distribution 25111-25113, CLI 25190-25199) with their data under var/drill; its services
listen on 25001-25004 with their own databases (prefix ``drill<run>``), its webhook receiver
on 25099. Whatever happens, its nodes are stopped and its databases dropped at the end; the
shared broker (rabbit@<host>, 5672) is never touched.

Settings (environment): MINYI_DRILL_OPINIONS (2000), MINYI_DRILL_CONCURRENCY (8)."""

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from shared import broker_admin
from shared.settings import SERVICES, Settings
from shared.store import drop_databases
from shared.topology import BINDINGS, work_queue_name
from tools.chaos import drill
from tools.loadtest import _process_usage, _running, _usage_report

ROOT = Path(__file__).resolve().parent.parent
DRILL = ROOT / "var" / "drill"
RABBITMQ = Path("/usr/lib/rabbitmq/bin")
SERVICE_PORT_BASE = 25000
WEBHOOK_PORT = 25099
VHOST = "minyi"
# Stop the leader once this share of the opinions is in, start it again at the second.
STOP_AT, START_AT = 0.3, 0.6


@dataclass
class Node:
    letter: str
    index: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return f"minyi-drill-{self.letter}@localhost"

    @property
    def amqp(self) -> str:
        return f"127.0.0.1:{25101 + self.index}"

    @property
    def management_port(self) -> int:
        return 25121 + self.index

    @property
    def management(self) -> str:
        return f"http://guest:guest@127.0.0.1:{self.management_port}"

    def env(self) -> dict[str, str]:
        home = DRILL / self.letter
        return {
            **os.environ,
            # The nodes' Erlang cookie is DRILL/.erlang.cookie, shared by the three only.
            "HOME": str(DRILL),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(25101 + self.index),
            "RABBITMQ_DIST_PORT": str(25111 + self.index),
            "RABBITMQ_CTL_DIST_PORT_MIN": "25190",
            "RABBITMQ_CTL_DIST_PORT_MAX": "25199",
            "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(DRILL / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(home / "log"),
            "RABBITMQ_PID_FILE": str(home / "pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def configure(self) -> None:
        home = DRILL / self.letter
        home.mkdir(parents=True, exist_ok=True)
        (home / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {self.amqp}\n"
            f"management.tcp.ip = 127.0.0.1\n"
            f"management.tcp.port = {self.management_port}\n"
        )  # and quorum queues' leaders where they are declared (client-local, the default)

    def ctl(self, *args: str) -> str:
        done = subprocess.run(
            [str(RABBITMQ / "rabbitmqctl"), "-q", "-n", self.name, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if done.returncode:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {self.name}: {done.stderr}")
        return done.stdout

    def start(self) -> None:
        home = DRILL / self.letter
        with (home / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                [str(RABBITMQ / "rabbitmq-server")],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, ended as one at cleanup
            )
        # await_startup fails at once while the node is not yet known to epmd: ask again.
        deadline = time.monotonic() + 120
        while True:
            try:
                self.ctl("await_startup", "--timeout", "30")
                return
            except RuntimeError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def stop(self) -> None:
        self.ctl("stop")
        if self.process is not None:
            self.process.wait(60)
            self.process = None

    def kill(self) -> None:
        """Cleanup: stop the node however it is; only the processes this drill started."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.stop()
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)


def _cluster(nodes: list[Node]) -> None:
    """Start the three nodes and join b and c to a."""
    if DRILL.exists():
        shutil.rmtree(DRILL)
    DRILL.mkdir(parents=True)
    cookie = DRILL / ".erlang.cookie"
    cookie.write_text(secrets.token_hex(20))
    cookie.chmod(0o400)
    (DRILL / "enabled_plugins").write_text("[rabbitmq_management].\n")
    for node in nodes:
        node.configure()
        node.start()
    for node in nodes[1:]:
        node.ctl("stop_app")
        node.ctl("join_cluster", nodes[0].name)
        node.ctl("start_app")
    running = _running_nodes(nodes[0])
    if running != {n.name for n in nodes}:
        raise RuntimeError(f"cluster did not form: running nodes {running}")


def _running_nodes(node: Node) -> set[str]:
    status = json.loads(node.ctl("cluster_status", "--formatter", "json"))
    return set(status["running_nodes"])


def _leaders(alive: list[Node]) -> dict[str, str]:
    """Leader node of each work queue, asked of a running node's management API."""
    for node in alive:
        with contextlib.suppress(httpx.HTTPError):
            settings = Settings(rabbit_admin_url=node.management, amqp_vhost=VHOST)
            return {
                work_queue_name(s): broker_admin.queue_info(settings, work_queue_name(s))["leader"]
                for s in BINDINGS
            }
    raise RuntimeError(f"no management API answers among {[n.name for n in alive]}")


def _clients_of(node: Node) -> list[str]:
    """The users of the AMQP connections on ``node`` (the services that must move when it
    stops)."""
    found = httpx.get(
        f"http://127.0.0.1:{node.management_port}/api/connections", auth=("guest", "guest")
    )
    return sorted(c["user"] for c in found.raise_for_status().json() if c["node"] == node.name)


class NodeFailure:
    """Stops the node leading the most work queues at STOP_AT of the opinions and starts it
    again at START_AT (or when the submissions end)."""

    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = nodes
        self.log: list[str] = []
        self.stopped = asyncio.Event()
        self.victim: Node | None = None
        self.leaders_before: dict[str, str] = {}
        self.leaders_during: dict[str, str] = {}
        self.clients_of_victim: list[str] = []

    def _note(self, what: str) -> None:
        self.log.append(f"{time.strftime('%H:%M:%S')} {what}")

    async def _until(self, share: float, progress: Callable[[], float]) -> None:
        while progress() < share and not self.stopped.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopped.wait(), 0.5)

    async def run(self, progress: Callable[[], float]) -> None:
        await self._until(STOP_AT, progress)
        self.leaders_before = await asyncio.to_thread(_leaders, self.nodes)
        leads = {
            n.name: sorted(q for q, leader in self.leaders_before.items() if leader == n.name)
            for n in self.nodes
        }
        victim = max(self.nodes, key=lambda n: len(leads[n.name]))
        self.victim = victim
        self.clients_of_victim = await asyncio.to_thread(_clients_of, victim)
        self._note(
            f"stop {victim.name}, leader of {', '.join(leads[victim.name])}, "
            f"connected: {', '.join(self.clients_of_victim) or 'no service'}"
        )
        await asyncio.to_thread(victim.stop)
        alive = [n for n in self.nodes if n is not victim]
        await asyncio.sleep(5)  # let the remaining nodes elect new leaders
        self.leaders_during = await asyncio.to_thread(_leaders, alive)
        self._note(f"leaders now: {self.leaders_during}")
        await self._until(START_AT, progress)
        self._note(f"start {victim.name} again")
        await asyncio.to_thread(victim.start)
        running = await asyncio.to_thread(_running_nodes, victim)
        self._note(f"{victim.name} rejoined; running nodes: {sorted(running)}")
        await self.stopped.wait()


async def _drill(nodes: list[Node], count: int, concurrency: int) -> dict[str, Any]:
    run = uuid.uuid4().hex[:6]
    ports = {s: SERVICE_PORT_BASE + 1 + i for i, s in enumerate(SERVICES)}
    env = {
        "MINYI_AMQP_VHOST": VHOST,
        "MINYI_RABBIT_ADMIN_URL": nodes[0].management,
        "MINYI_DB_PREFIX": f"drill{run}",
        "MINYI_FOLLOWUP_PUBLIC_URL": f"http://127.0.0.1:{ports['followup']}",
        # tools.demo.url() and the service processes read these.
        **{f"MINYI_{s.upper()}_PORT": str(port) for s, port in ports.items()},
    }
    os.environ.update(env)
    settings = Settings(amqp_nodes=[n.amqp for n in nodes])
    broker_admin.setup(settings)
    commands = {
        f"drill-{s}": (
            ["tools.cli", "serve", s, "--port", str(port)],
            f"http://127.0.0.1:{port}/ready",
        )
        for s, port in ports.items()
    }
    # Service i starts on node i mod 3 and declares its queues there, so connections and queue
    # leaders are spread over the three nodes, and the node stopped always has services to move.
    own_nodes = {}
    for i, service in enumerate(SERVICES):
        first = i % len(nodes)
        order = [n.amqp for n in nodes[first:] + nodes[:first]]
        own_nodes[f"drill-{service}"] = {"MINYI_AMQP_NODES": json.dumps(order)}
    failure = NodeFailure(nodes)
    try:
        async with _running(commands, own_nodes) as pids:
            before, started = _process_usage(pids), time.time()
            report = await drill(settings, count, concurrency, failure, WEBHOOK_PORT)
            seconds = time.time() - started
            usage = _usage_report(before, _process_usage(pids), seconds)
    finally:
        await drop_databases(settings)
    report["seconds"] = round(seconds)
    report["stopped_node"] = failure.victim.name if failure.victim else None
    report["services_moved"] = failure.clients_of_victim
    report["leaders_before"] = failure.leaders_before
    report["leaders_while_stopped"] = failure.leaders_during
    report["leaders_after"] = _leaders(nodes)
    report["services"] = {name: usage[name] for name in pids if name in usage}
    # The drill proves something only if the stopped node had services to move.
    report["passed"] = report["passed"] and bool(failure.clients_of_victim)
    return report


def run() -> dict[str, Any]:
    """`minyi drill-cluster`: form the cluster, run the drill, always take the nodes down."""
    count = int(os.environ.get("MINYI_DRILL_OPINIONS", "2000"))
    concurrency = int(os.environ.get("MINYI_DRILL_CONCURRENCY", "8"))
    nodes = [Node(letter, i) for i, letter in enumerate("abc")]
    # A SIGTERM (e.g. a timeout) unwinds through the finally below like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        _cluster(nodes)
        report = asyncio.run(_drill(nodes, count, concurrency))
    finally:
        for node in nodes:
            node.kill()
    out = ROOT / "var" / "drill-report.json"
    out.write_text(json.dumps(report, ensure_ascii=False, indent=2))
    return report
