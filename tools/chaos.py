"""Chaos drill (`make chaos`): while opinions flow through the running local stack, SIGKILL
random service processes every few seconds and restart them, restart RabbitMQ once and FerretDB
once; then check from the stores, the broker and a webhook sink that every opinion was registered
once, assigned once and its department notified once, and that no message was parked.

Settings (environment): MINYI_CHAOS_OPINIONS (5000), MINYI_CHAOS_CONCURRENCY (8),
MINYI_CHAOS_KILL_EVERY (5 seconds), MINYI_CHAOS_WEBHOOK_PORT (8097)."""

import asyncio
import json
import os
import random
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import httpx

from shared import broker_admin
from shared.settings import SERVICES, Settings, get_settings
from shared.store import mongo_client
from shared.topology import BINDINGS
from tools.demo import DEMO_OFFICES, WebhookSink, seed_keys, url
from tools.loadtest import bench_opinion, progress, subscribe_departments

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = ROOT / "var" / "run"


def _sh(*command: str) -> None:
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def _kill(name: str, sig: signal.Signals) -> bool:
    pid_file = RUN_DIR / f"{name}.pid"
    try:
        os.kill(int(pid_file.read_text().strip()), sig)
        return True
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return False


def _restart_rabbitmq() -> None:
    _sh("rabbitmqctl", "-q", "shutdown")
    _sh("deploy/local/stack.sh", "up")


def _restart_ferretdb() -> None:
    pid = int((RUN_DIR / "ferretdb.pid").read_text().strip())
    _kill("ferretdb", signal.SIGTERM)
    while Path(f"/proc/{pid}").exists():  # it drains its connections first
        time.sleep(0.2)
    _sh("deploy/local/stack.sh", "up")


class Disruption(Protocol):
    """What a drill does to the system while opinions flow: ``run`` until ``stopped`` is set,
    then leave everything running again; ``log`` says what it did."""

    log: list[str]
    stopped: asyncio.Event

    async def run(self, progress: Callable[[], float]) -> None: ...


class Chaos:
    """Kills and restarts processes until stopped; logs what it did."""

    def __init__(self, kill_every: float) -> None:
        self.kill_every = kill_every
        self.log: list[str] = []
        self.stopped = asyncio.Event()

    async def _do(self, what: str, action: Any, *args: Any) -> None:
        self.log.append(f"{time.strftime('%H:%M:%S')} {what}")
        await asyncio.to_thread(action, *args)

    async def run(self, progress: Callable[[], float]) -> None:
        broker_done = store_done = False
        while not self.stopped.is_set():
            await asyncio.sleep(self.kill_every * random.uniform(0.5, 1.5))
            if not broker_done and progress() >= 0.2:
                broker_done = True
                await self._do("restart RabbitMQ", _restart_rabbitmq)
            elif not store_done and progress() >= 0.4:
                store_done = True
                await self._do("restart FerretDB", _restart_ferretdb)
            else:
                victim = random.choice(SERVICES)
                await self._do(f"SIGKILL {victim}", _kill, victim, signal.SIGKILL)
                await asyncio.sleep(0.5)
            # Start whatever is not running and wait until all are ready again.
            await asyncio.to_thread(_sh, "deploy/local/services.sh", "up")


async def _submit(http: httpx.AsyncClient, key: str, run: str, i: int) -> str:
    """Register one opinion, retrying with the same Idempotency-Key until it is accepted."""
    for _ in range(600):
        try:
            response = await http.post(
                f"{url('intake')}/opinions",
                json=bench_opinion(run, i),
                headers={"Authorization": f"Bearer {key}", "Idempotency-Key": f"{run}-{i}"},
            )
            if response.status_code in (200, 201):
                return str(response.json()["id"])
            if response.status_code < 500:
                raise RuntimeError(f"opinion {i} refused: {response.status_code} {response.text}")
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.5)
    raise RuntimeError(f"opinion {i} not accepted after many tries")


async def drill(
    settings: Settings, count: int, concurrency: int, chaos: Disruption, port: int
) -> dict[str, Any]:
    """Submit ``count`` opinions while ``chaos`` runs; wait for their notifications; verify."""
    keys = await seed_keys(settings, {})
    offices = [keys[f"office:{code}"] for code in DEMO_OFFICES]
    run = uuid.uuid4().hex[:6]
    sink = WebhookSink(port)
    ids: dict[int, str] = {}
    async with sink.running(), httpx.AsyncClient(timeout=30) as http:
        await subscribe_departments(http, keys, sink)
        try:
            gate = asyncio.Semaphore(concurrency)

            async def submit(i: int) -> None:
                async with gate:
                    ids[i] = await _submit(http, offices[i % len(offices)], run, i)
                    progress("submitted", len(ids), count)

            chaos_task = asyncio.create_task(chaos.run(lambda: len(ids) / count))
            await asyncio.gather(*(submit(i) for i in range(count)))
            chaos.stopped.set()
            await chaos_task

            wanted = set(ids.values())
            deadline = time.time() + 600

            def notified() -> set[str]:
                return {r.event["subject"] for r in sink.of_type("opinion.assigned")} & wanted

            while len(notified()) < len(wanted) and time.time() < deadline:
                progress("notified", len(notified()), len(wanted))
                await asyncio.sleep(2)
            progress("notified", len(notified()), len(wanted))
            await asyncio.sleep(10)  # let late duplicates, if any, arrive before counting
        finally:
            # Also when the drill stops half-way: deliveries to a sink that has stopped listening
            # would be retried and parked, and the next drill would count them.
            chaos.stopped.set()
            await sink.unsubscribe(http)
    return await _verify(settings, run, ids, sink, chaos.log)


async def _verify(
    settings: Settings, run: str, ids: dict[int, str], sink: WebhookSink, actions: list[str]
) -> dict[str, Any]:
    wanted = set(ids.values())
    deliveries = [r for r in sink.of_type("opinion.assigned") if r.event["subject"] in wanted]
    delivery_ids = Counter(
        r.event["subject"] for r in {r.delivery_id: r for r in deliveries}.values()
    )
    client = mongo_client(settings)
    try:
        intake = client[settings.database("intake")].opinions
        registered = await intake.count_documents(
            {"submission.location.street": {"$regex": f"^测试街道{run}-"}}
        )
        routing = client[settings.database("routing")].decisions
        followup = client[settings.database("followup")].cases
        missing_decisions = [o for o in wanted if await routing.find_one({"_id": o}) is None]
        missing_cases = [o for o in wanted if await followup.find_one({"_id": o}) is None]
    finally:
        await client.close()
    parked = {s: len(await broker_admin.parked(s, settings, 1000)) for s in BINDINGS}
    report = {
        "opinions": len(ids),
        "distinct_opinion_ids": len(wanted),
        "registered_in_intake": registered,
        "lost_in_routing": len(missing_decisions),
        "lost_in_followup": len(missing_cases),
        "notified": len(delivery_ids),
        "lost_notifications": len(wanted) - len(delivery_ids),
        "duplicated_notifications": sum(n - 1 for n in delivery_ids.values() if n > 1),
        "same_delivery_resent": len(deliveries) - sum(delivery_ids.values()),
        "invalid_signatures": sum(not r.valid_signature for r in deliveries),
        "parked": parked,
        "actions": actions,
    }
    report["passed"] = (
        len(wanted) == len(ids) == registered
        and not missing_decisions
        and not missing_cases
        and report["lost_notifications"] == 0
        and report["duplicated_notifications"] == 0
        and report["invalid_signatures"] == 0
        and not any(parked.values())
    )
    return report


def run() -> dict[str, Any]:
    """`minyi chaos`: run the drill and return its report."""
    env = os.environ.get
    settings = get_settings()
    report = asyncio.run(
        drill(
            settings,
            count=int(env("MINYI_CHAOS_OPINIONS", "5000")),
            concurrency=int(env("MINYI_CHAOS_CONCURRENCY", "8")),
            chaos=Chaos(float(env("MINYI_CHAOS_KILL_EVERY", "5"))),
            port=int(env("MINYI_CHAOS_WEBHOOK_PORT", "8097")),
        )
    )
    out = ROOT / "var" / "chaos"
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2))
    return report
