"""Two followup replicas as real processes on their own vhost and databases, with a movable
clock, and a queue that captures every event they publish — for the follow-up e2e tests."""

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aio_pika
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared import auth, topology
from shared.clock import beijing_year, utcnow
from shared.events import CE_CONTENT_TYPE, CloudEvent, EventData
from shared.settings import Settings
from tools.demo import wait_for

from .conftest import LOGS, PORT_BASE, capture_events, own_run, stop

REPLICA_PORTS = (PORT_BASE + 101, PORT_BASE + 102)
DEPARTMENTS = ("housing", "transport", "ecology")


@dataclass
class Replicas:
    settings: Settings
    keys: dict[str, str]
    channel: aio_pika.abc.AbstractChannel
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    captured: list[CloudEvent] = field(default_factory=list)

    def url(self, replica: int = 0) -> str:
        return f"http://127.0.0.1:{REPLICA_PORTS[replica]}"

    def header(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def start(self, replica: int) -> None:
        env = {
            **os.environ,
            "MINYI_DB_PREFIX": self.settings.db_prefix,
            "MINYI_AMQP_VHOST": self.settings.amqp_vhost,
            "MINYI_FOLLOWUP_PUBLIC_URL": self.url(0),
            "MINYI_TEST_CLOCK": "1",
            "MINYI_FOLLOWUP_TICK_SECONDS": "0.5",
        }
        log = (LOGS / f"followup-replica{replica}.log").open("ab")
        command = [sys.executable, "-m", "tools.cli", "serve", "followup"]
        process = subprocess.Popen(
            [*command, "--port", str(REPLICA_PORTS[replica])],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        if replica < len(self.processes):
            self.processes[replica] = process
        else:
            self.processes.append(process)

    async def wait_ready(self, replica: int) -> None:
        async def ready() -> bool:
            if self.processes[replica].poll() is not None:
                pytest.fail(f"followup replica {replica} exited; see {LOGS}")
            try:
                async with httpx.AsyncClient() as http:
                    r = await http.get(f"{self.url(replica)}/ready", timeout=2)
                return r.status_code == 200
            except httpx.HTTPError:
                return False

        await wait_for(ready, f"followup replica {replica}", within=90)

    def kill(self, replica: int) -> None:
        self.processes[replica].kill()
        self.processes[replica].wait()

    async def set_clock(self, now: datetime) -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.put(
                f"{self.url(0)}/test-clock",
                headers=self.header("admin"),
                json={"now": now.isoformat()},
            )
        assert r.status_code == 200, r.text

    async def publish(self, data: EventData) -> None:
        """Publish an event as another service would (e.g. routing's opinion.assigned)."""
        await self.republish(CloudEvent.wrap("/minyi/routing", data))

    async def republish(self, event: CloudEvent) -> None:
        """Put an event on the exchange as it is (same id): a redelivery or a replay."""
        exchange = await self.channel.get_exchange(topology.EVENTS.name)
        message = aio_pika.Message(
            event.model_dump_json().encode(),
            message_id=event.id,
            content_type=CE_CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await exchange.publish(message, routing_key=event.payload().routing_key(), mandatory=True)

    async def handled(self, types: set[str]) -> int:
        """Events of these types both replicas have handled (``ok``), from their /metrics."""
        total = 0
        async with httpx.AsyncClient(timeout=10) as http:
            for replica in range(len(REPLICA_PORTS)):
                text = (await http.get(f"{self.url(replica)}/metrics")).text
                for family in text_string_to_metric_families(text):
                    total += sum(
                        int(sample.value)
                        for sample in family.samples
                        if sample.name == "minyi_events_handled_total"
                        and sample.labels["outcome"] == "ok"
                        and sample.labels["type"] in types
                    )
        return total

    async def case(self, opinion_id: str) -> dict[str, Any] | None:
        """The case as an administrator reads it, or None while it does not exist."""
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.get(f"{self.url(0)}/cases/{opinion_id}", headers=self.header("admin"))
        return r.json() if r.status_code == 200 else None

    def of(self, opinion_id: str, name: str) -> list[CloudEvent]:
        return [
            e for e in self.captured if e.subject == opinion_id and e.type == f"minyi.{name}.v1"
        ]

    async def feedback_link(self, opinion_id: str, feedback_round: int) -> str:
        """The submitter's feedback link of a round, from the captured feedback.requested."""

        def found() -> str | None:
            links = self.of(opinion_id, "feedback.requested")
            unique = {e.id: e for e in links}
            return (
                sorted(unique.values(), key=lambda e: e.time)[feedback_round - 1].data[
                    "feedback_url"
                ]
                if len(unique) >= feedback_round
                else None
            )

        return str(await wait_for(found, f"feedback link {feedback_round} of {opinion_id}"))


@pytest.fixture(scope="module")
async def replicas(settings: Settings) -> AsyncIterator[Replicas]:
    async with own_run(settings, "fu") as (own, db):
        keys = {
            "admin": await auth.create_key(db, auth.Role.ADMIN, "admin", "系统管理员"),
            "supervisor": await auth.create_key(db, auth.Role.SUPERVISOR, "supervisor", "督查室"),
            # A second supervisor, for the 终审 of a disputed 退单.
            "chief": await auth.create_key(db, auth.Role.SUPERVISOR, "chief", "督查室主任"),
            "office": await auth.create_key(db, auth.Role.OFFICE, "office-fu", "测试办公室"),
            "editor": await auth.create_key(db, auth.Role.EDITOR, "editor", "分类编辑"),
        }
        for code in DEPARTMENTS:
            keys[code] = await auth.create_key(db, auth.Role.DEPARTMENT, code, code)
        captured: list[CloudEvent] = []

        def keep(body: bytes) -> None:
            event = CloudEvent.model_validate(json.loads(body))
            if event.source == "/minyi/followup":
                captured.append(event)

        connection, channel = await capture_events(own, keep)
        system = Replicas(own, keys, channel, captured=captured)
        LOGS.mkdir(parents=True, exist_ok=True)
        try:
            for replica in range(len(REPLICA_PORTS)):
                system.start(replica)
            await asyncio.gather(*(system.wait_ready(r) for r in range(len(REPLICA_PORTS))))
            yield system
        finally:
            stop(system.processes)
            await connection.close()


def assignment(
    opinion_id: str, department: str = "housing", role: str = "lead", urgency: str = "general"
) -> dict[str, Any]:
    """The fields of routing's opinion.assigned for a test opinion, received just now."""
    now = utcnow()
    return {
        "opinion_id": opinion_id,
        "tracking_no": f"SQ-{beijing_year(now)}-{opinion_id[-6:]}",
        "office_id": "office-fu",
        "title": "和平路路灯不亮",
        "department": department,
        "department_name": f"区{department}",
        "role": role,
        "category": "城乡建设",
        "urgency": urgency,
        "explanation": "test",
        "received_at": now.isoformat(),
    }
