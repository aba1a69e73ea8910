"""Demo data and a walk-through of one opinion's life, for ``make run``.

Also home of ``WebhookSink``, a small webhook receiver that checks signatures — the demo's
stand-in for an office's own system, and the tests' receiver."""

import asyncio
import contextlib
import hmac
import inspect
import json
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from services.console.adapters import Directory, Passwords
from services.console.domain import Person, Unit, UnitKind
from services.notification.domain import signature
from services.routing.domain import DEPARTMENTS
from shared import auth
from shared.settings import DEFAULT_PORTS, Settings
from shared.store import mongo_client

DEMO_OFFICES = {
    "cppcc-office": "区政协办公室",
    "npc-office": "区人大常委会代表联络室",
}


async def seed_keys(settings: Settings, known: dict[str, str]) -> dict[str, str]:
    """One key per demo office, department, supervisor, editor and admin; reuses the ``known``
    keys that are still valid. Keys are labelled ``<role>:<subject>``."""
    mongo = mongo_client(settings)
    db = mongo[settings.database(auth.AUTH_DB)]
    wanted = [(auth.Role.OFFICE, code, name) for code, name in DEMO_OFFICES.items()]
    wanted += [(auth.Role.DEPARTMENT, d.code, d.name) for d in DEPARTMENTS.values()]
    wanted += [
        (auth.Role.SUPERVISOR, "supervisor", "区政府督查室"),
        (auth.Role.EDITOR, "editor", "登记分类编辑"),
        (auth.Role.ADMIN, "admin", "系统管理员"),
    ]
    keys = {}
    try:
        for role, subject, name in wanted:
            label = f"{role.value}:{subject}"
            key = known.get(label)
            if key is None or await db.api_keys.find_one({"_id": auth.hash_key(key)}) is None:
                key = await auth.create_key(db, role, subject, name)
            keys[label] = key
    finally:
        await mongo.close()
    return keys


# One person per role for trying the console (login, name, unit, role).
DEMO_PEOPLE = [
    ("clerk", "李文静", "cppcc-office", auth.Role.OFFICE),
    ("handler", "张建国", "housing", auth.Role.DEPARTMENT),
    ("editor", "陈思远", "editor", auth.Role.EDITOR),
    ("supervisor", "赵明", "supervisor", auth.Role.SUPERVISOR),
    ("admin", "周敏", "admin", auth.Role.ADMIN),
]
STAFF_UNITS = {"supervisor": "区政府督查室", "editor": "登记分类编辑组", "admin": "系统管理"}


async def seed_people(settings: Settings, known: dict[str, str]) -> dict[str, str]:
    """The demo units and one console account per role with a random password (kept in the
    ``known`` file, so a second seed keeps them). Returns login → password."""
    mongo = mongo_client(settings)
    directory = Directory(mongo[settings.database("console")])
    passwords = Passwords()
    units = [Unit(code=c, name=n, kind=UnitKind.OFFICE) for c, n in DEMO_OFFICES.items()]
    units += [
        Unit(code=d.code, name=d.name, kind=UnitKind.DEPARTMENT) for d in DEPARTMENTS.values()
    ]
    units += [Unit(code=c, name=n, kind=UnitKind.STAFF) for c, n in STAFF_UNITS.items()]
    made = {}
    try:
        for unit in units:
            await directory.save_unit(unit)
        for login, name, unit_code, role in DEMO_PEOPLE:
            password = known.get(login) or f"Minyi-{secrets.token_urlsafe(9)}"
            person = await directory.person(login)
            if person is None or not passwords.verify(person.password_hash, password):
                await directory.save_person(
                    Person(
                        login=login,
                        name=name,
                        unit=unit_code,
                        roles=[role],
                        password_hash=passwords.hash(password),
                    )
                )
            made[login] = password
    finally:
        await mongo.close()
    return made


@dataclass
class Received:
    delivery_id: str
    valid_signature: bool
    event: dict[str, Any]
    at: float  # time.time() on arrival


@dataclass
class WebhookSink:
    """Receives webhook posts on 127.0.0.1:``port``; checks each against ``secrets``."""

    port: int
    secrets: list[str] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    fail_next: int = 0  # answer this many posts with 503 first
    subscriptions: list[tuple[str, str]] = field(default_factory=list)  # (key, id)

    async def _post(self, request: Request) -> Response:
        if self.fail_next > 0:
            self.fail_next -= 1
            return Response(status_code=503)
        body = await request.body()
        header = request.headers.get("x-minyi-signature", "")
        timestamp = header.partition("t=")[2].partition(",")[0]
        valid = timestamp.isdigit() and any(
            hmac.compare_digest(header, signature(s, int(timestamp), body)) for s in self.secrets
        )
        self.received.append(
            Received(
                request.headers.get("x-minyi-delivery", ""), valid, json.loads(body), time.time()
            )
        )
        return Response(status_code=204)

    async def subscribe(
        self, http: httpx.AsyncClient, key: str, event_names: list[str] | None = None
    ) -> None:
        """Subscribe this sink for the key's recipient, replacing an earlier subscription to
        the same address (its secret is not known here)."""
        auth = {"Authorization": f"Bearer {key}"}
        subscriptions = f"{url('notification')}/subscriptions"
        for old in (await http.get(subscriptions, headers=auth)).raise_for_status().json():
            if old["address"] == self.url and old["active"]:
                gone = await http.delete(f"{subscriptions}/{old['id']}", headers=auth)
                gone.raise_for_status()
        response = await http.post(
            f"{subscriptions}/webhooks",
            headers=auth,
            json={"url": self.url, "event_names": event_names or []},
        )
        response.raise_for_status()
        self.secrets.append(response.json()["secret"])
        self.subscriptions.append((key, response.json()["id"]))

    async def unsubscribe(self, http: httpx.AsyncClient) -> None:
        """End the subscriptions ``subscribe`` made: nobody listens once the sink stops."""
        for key, subscription_id in self.subscriptions:
            gone = await http.delete(
                f"{url('notification')}/subscriptions/{subscription_id}",
                headers={"Authorization": f"Bearer {key}"},
            )
            gone.raise_for_status()
        self.subscriptions.clear()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def of_type(self, name: str) -> list[Received]:
        return [r for r in self.received if r.event["type"] == f"minyi.{name}.v1"]

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator["WebhookSink"]:
        app = Starlette(routes=[Route("/hook", self._post, methods=["POST"])])
        async with serving(app, self.port):
            yield self


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, port: int) -> AsyncIterator[None]:
    """Run an ASGI app on 127.0.0.1:``port`` in this event loop while the block runs."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    # Bound here: uvicorn answers a port it cannot bind with SystemExit, which escapes the loop.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise RuntimeError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        await task


def url(service: str) -> str:
    """Where ``service`` listens: MINYI_<SERVICE>_PORT (as for deploy/local/services.sh), or
    its default port."""
    port = os.environ.get(f"MINYI_{service.upper()}_PORT", DEFAULT_PORTS[service])
    return f"http://127.0.0.1:{port}"


async def wait_for(check: Any, what: str, within: float = 30.0) -> Any:
    """Poll ``check()`` (plain or async) until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


async def run_demo(keys: dict[str, str], webhook_port: int) -> None:
    office = {"Authorization": f"Bearer {keys['office:cppcc-office']}"}
    sink = WebhookSink(webhook_port)
    async with sink.running(), httpx.AsyncClient(timeout=10) as http:
        await sink.subscribe(http, keys["office:cppcc-office"])
        print(f"1. 区政协办公室 subscribed a webhook at {sink.url}")

        opinion = {
            "title": "幸福路小区门口夜间施工噪音扰民",
            "content": (
                "幸福路小区门口道路施工每天夜里十一点后仍在作业，噪音很大，"
                "老人孩子无法休息，希望有关部门督促施工单位遵守夜间施工规定。"
            ),
            "channel": "接待日",
            "submitter": {
                "kind": "委员",
                "name": "王委员",
                "sector": "经济界",
                "phone": "13800001234",
            },
            "location": {"district": "示范区", "street": "幸福街道", "community": "幸福社区"},
        }
        r = await http.post(f"{url('intake')}/opinions", headers=office, json=opinion)
        r.raise_for_status()
        accepted = r.json()
        case_url = f"{url('followup')}/cases/{accepted['id']}"
        print(f"2. registered: {accepted['tracking_no']} (id {accepted['id']})")

        async def case() -> dict[str, Any] | None:
            resp = await http.get(case_url, headers=office)
            return resp.json() if resp.status_code == 200 else None

        opened = await wait_for(case, "the case to be opened")
        department = next(iter(opened["assignments"]))
        dept_key = {"Authorization": f"Bearer {keys[f'department:{department}']}"}
        print(
            f"3. routed to {opened['assignments'][department]['department_name']} "
            f"({opened['category']})"
        )
        (await http.post(f"{case_url}/sign", headers=dept_key)).raise_for_status()
        reply = {"result": "已解决", "text": "已责令施工单位停止夜间作业，22时后不再施工。"}
        (await http.post(f"{case_url}/reply", headers=dept_key, json=reply)).raise_for_status()
        print("4. department signed (签收) and replied (答复)")

        async def feedback_link() -> str | None:
            found = sink.of_type("feedback.requested")
            return found[0].event["data"]["feedback_url"] if found else None

        link = await wait_for(feedback_link, "the feedback link webhook")
        r = await http.post(link, json={"rating": "满意", "comment": "处理及时"})
        r.raise_for_status()
        print("5. submitter rated the reply 满意 through the signed link")

        async def closed() -> dict[str, Any] | None:
            body = await case()
            return body if body and body["status"] == "closed" else None

        final = await wait_for(closed, "the case to close")
        await wait_for(lambda: sink.of_type("case.closed"), "the case.closed webhook")
        print("\nTimeline 办理过程:")
        for step in final["timeline"]:
            print(f"  {step['at'][:19]}  {step['step']}  {step['summary']}")
        mine = [r for r in sink.received if r.event["subject"] == accepted["id"]]
        print(
            f"\nWebhooks the office received for it: {len(mine)} "
            f"({', '.join(r.event['type'] for r in mine)}); "
            f"signatures valid: {all(r.valid_signature for r in mine)}"
        )
        await sink.unsubscribe(http)
    office_key = keys["office:cppcc-office"]
    print(f"""
Try it yourself with the office key of 区政协办公室 (all demo keys: var/demo-keys.json):
  curl -s -X POST {url("intake")}/opinions -H 'Authorization: Bearer {office_key}' \\
    -H 'Content-Type: application/json' -d '{json.dumps(opinion, ensure_ascii=False)}'
  curl -s {url("followup")}/cases/<id> -H 'Authorization: Bearer {office_key}'
API docs: {url("intake")}/docs  {url("routing")}/docs  {url("followup")}/docs  \
{url("notification")}/docs
RabbitMQ: http://127.0.0.1:15672 (guest/guest)""")
