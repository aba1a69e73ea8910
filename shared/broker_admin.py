"""RabbitMQ administration through the management HTTP API: the vhost, one user per service
with permissions limited to its own queues, per-department users that can only read their own
events, and the parking-lot tools (inspect, replay)."""

import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import aio_pika
import httpx

from shared import topology
from shared.events import DEPARTMENT_CODE
from shared.messaging import ATTEMPT_HEADER, REASON_HEADER, ROUTING_KEY_HEADER
from shared.settings import SERVICES, Settings


def _client(settings: Settings) -> httpx.Client:
    parts = urlsplit(settings.rabbit_admin_url)
    base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}"
    return httpx.Client(
        base_url=base, auth=(parts.username or "guest", parts.password or "guest"), timeout=10
    )


def _any_of(words: tuple[str, ...] | list[str]) -> str:
    return "|".join(re.escape(w) for w in words)


def service_permissions(service: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Vhost and topic permissions of a service's user. It may configure only its own queues
    (not the exchanges: the administrator declares them), write and read its own queues and the
    two exchanges; on the event exchange publish only its own routing keys and bind only its
    own binding keys, on the internal exchange address only its own queues."""
    own_queues = rf"{re.escape(topology.work_queue_name(service))}(\..+)?"
    exchanges = rf"{re.escape(topology.EVENTS.name)}|{re.escape(topology.INTERNAL.name)}"
    vhost = {
        "configure": rf"^{own_queues}$",
        "write": rf"^({exchanges}|{own_queues})$",
        "read": rf"^({exchanges}|{own_queues})$",
    }
    binds = list(topology.BINDINGS.get(service, ())) + list(topology.FOLLOWS.get(service, ()))
    topic = [
        {
            "exchange": topology.EVENTS.name,
            "write": rf"^({_any_of(topology.PUBLISHES[service])})(\.[^.]+)?$",
            "read": rf"^({_any_of(binds)})$" if binds else "^$",
        },
        {
            "exchange": topology.INTERNAL.name,
            "write": rf"^{own_queues}$",
            "read": rf"^{own_queues}$",
        },
    ]
    return vhost, topic


def _declare_exchanges(http: httpx.Client, vhost: str) -> None:
    """Both exchanges as topic exchanges; an older direct minyi.dlx is replaced (its bindings
    are made again by each service when it starts)."""
    for exchange in (topology.EVENTS, topology.INTERNAL):
        path = f"/api/exchanges/{vhost}/{quote(exchange.name)}"
        found = http.get(path)
        if found.status_code == 200 and found.json()["type"] != "topic":
            http.delete(path).raise_for_status()
        http.put(path, json={"type": "topic", "durable": True}).raise_for_status()


def setup(settings: Settings) -> list[str]:
    """Idempotently create the vhost and the service users; returns what was done."""
    vhost = quote(settings.amqp_vhost, safe="")
    done = []
    with _client(settings) as http:
        http.put(f"/api/vhosts/{vhost}").raise_for_status()
        admin = http.get("/api/whoami").raise_for_status().json()["name"]
        everything = {"configure": ".*", "write": ".*", "read": ".*"}
        http.put(f"/api/permissions/{vhost}/{quote(admin)}", json=everything).raise_for_status()
        done.append(f"vhost {settings.amqp_vhost} (admin {admin})")
        _declare_exchanges(http, vhost)
        for service in SERVICES:
            user = settings.amqp_user(service)
            body = {"password": settings.amqp_passwords[service], "tags": ""}
            http.put(f"/api/users/{user}", json=body).raise_for_status()
            perms, topics = service_permissions(service)
            http.put(f"/api/permissions/{vhost}/{user}", json=perms).raise_for_status()
            for topic in topics:
                http.put(f"/api/topic-permissions/{vhost}/{user}", json=topic).raise_for_status()
            done.append(f"user {user}")
    return done


def department_user(code: str) -> str:
    return f"minyi-dept-{code}"


def department_permissions(code: str) -> tuple[dict[str, str], dict[str, str]]:
    """Vhost and topic permissions of a department's user: it reads its own queue and nothing
    else, declares and writes nothing, and on the event exchange may read only keys ending
    with its code (checked by RabbitMQ when a queue is bound)."""
    queue = re.escape(topology.department_queue_name(code))
    vhost = {"configure": "^$", "write": "^$", "read": f"^{queue}$"}
    topic = {
        "exchange": topology.EVENTS.name,
        "write": "^$",
        "read": rf"^[^.]+\.[^.]+\.{re.escape(code)}$",
    }
    return vhost, topic


@dataclass
class ProvisionedDepartment:
    user: str
    password: str | None  # None when an existing user kept its password
    queue: str
    binding: str
    amqp_url: str


def provision_department(
    settings: Settings, code: str, password: str | None = None
) -> ProvisionedDepartment:
    """Idempotently create a department's RabbitMQ user, its quorum queue bound to its routing
    keys on the event exchange, and its permissions. A new user gets a generated password
    (returned once); an existing one keeps its own unless ``password`` is given. Users are
    broker-wide; queue and permissions belong to the settings' vhost."""
    if not re.fullmatch(DEPARTMENT_CODE, code):
        raise ValueError(f"department code {code!r} must match {DEPARTMENT_CODE}")
    vhost = quote(settings.amqp_vhost, safe="")
    user = department_user(code)
    queue = topology.department_queue_name(code)
    binding = topology.department_binding(code)
    with _client(settings) as http:
        exists = http.get(f"/api/users/{user}").status_code == 200
        if password is None and not exists:
            password = secrets.token_urlsafe(24)
        if password is not None:
            http.put(
                f"/api/users/{user}", json={"password": password, "tags": ""}
            ).raise_for_status()
        # Declared by the administrator: the department may not configure anything itself.
        _declare_exchanges(http, vhost)
        _bound_department_queues(http, settings)
        http.put(
            f"/api/queues/{vhost}/{quote(queue)}",
            json={"durable": True, "arguments": {"x-queue-type": "quorum"}},
        ).raise_for_status()
        http.post(
            f"/api/bindings/{vhost}/e/{quote(topology.EVENTS.name)}/q/{quote(queue)}",
            json={"routing_key": binding},
        ).raise_for_status()
        perms, topic = department_permissions(code)
        http.put(f"/api/permissions/{vhost}/{user}", json=perms).raise_for_status()
        http.put(f"/api/topic-permissions/{vhost}/{user}", json=topic).raise_for_status()
    url = f"amqp://{user}:<password>@{settings.amqp_host}:{settings.amqp_port}/{vhost}"
    return ProvisionedDepartment(user, password, queue, binding, url)


def _bound_department_queues(http: httpx.Client, settings: Settings) -> None:
    """A policy bounds every department queue of the vhost: a department that stops consuming
    cannot fill the broker's disk. Beyond the bound the oldest messages move to the overflow
    queue (dead-lettered: x-death names the queue and the routing key), itself bounded and
    dropping its oldest beyond that; there they can be read
    by the administrator (management API, `rabbitmqctl list_queues`) and moved back by hand."""
    vhost = quote(settings.amqp_vhost, safe="")
    overflow = topology.department_overflow_queue_name()
    http.put(
        f"/api/queues/{vhost}/{quote(overflow)}",
        json={
            "durable": True,
            "arguments": {
                "x-queue-type": "quorum",
                "x-max-length": settings.department_queue_max_length,
                "x-overflow": "drop-head",
            },
        },
    ).raise_for_status()
    http.post(
        f"/api/bindings/{vhost}/e/{quote(topology.INTERNAL.name)}/q/{quote(overflow)}",
        json={"routing_key": overflow},
    ).raise_for_status()
    http.put(
        f"/api/policies/{vhost}/minyi-department-queues",
        json={
            "pattern": rf"^{re.escape(topology.department_queue_name(''))}[^.]+$",
            "apply-to": "queues",
            "definition": {
                "max-length": settings.department_queue_max_length,
                "overflow": "drop-head",
                "dead-letter-exchange": topology.INTERNAL.name,
                "dead-letter-routing-key": overflow,
            },
        },
    ).raise_for_status()


def revoke_department(settings: Settings, code: str) -> None:
    """Delete a department's RabbitMQ user (users are broker-wide) and its queue here."""
    vhost = quote(settings.amqp_vhost, safe="")
    with _client(settings) as http:
        for path in (
            f"/api/users/{department_user(code)}",
            f"/api/queues/{vhost}/{quote(topology.department_queue_name(code))}",
        ):
            response = http.delete(path)
            if response.status_code not in (204, 404):
                response.raise_for_status()


def delete_vhost(settings: Settings) -> None:
    """Delete the vhost and its service users (users are broker-wide)."""
    paths = [f"/api/vhosts/{quote(settings.amqp_vhost, safe='')}"]
    paths += [f"/api/users/{quote(settings.amqp_user(s), safe='')}" for s in SERVICES]
    with _client(settings) as http:
        for path in paths:
            response = http.delete(path)
            if response.status_code not in (204, 404):
                response.raise_for_status()


async def parked(service: str, settings: Settings, limit: int) -> list[dict[str, Any]]:
    """Look at up to ``limit`` parked messages without removing them."""
    connection = await aio_pika.connect(settings.amqp_url(service))
    found = []
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(topology.parking_queue_name(service), ensure=False)
        held = []
        for _ in range(limit):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            held.append(message)
            headers = message.headers or {}
            found.append(
                {
                    "message_id": message.message_id,
                    "routing_key": headers.get(ROUTING_KEY_HEADER),
                    "reason": headers.get(REASON_HEADER),
                    "attempts": headers.get(ATTEMPT_HEADER, 0),
                    "body": message.body.decode(errors="replace")[:300],
                }
            )
        for message in held:
            await message.nack(requeue=True)
    return found


async def replay(service: str, settings: Settings, limit: int) -> int:
    """Move up to ``limit`` parked messages back to the service's work queue."""
    connection = await aio_pika.connect(settings.amqp_url(service))
    moved = 0
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        queue = await channel.get_queue(topology.parking_queue_name(service), ensure=False)
        internal = await channel.get_exchange(topology.INTERNAL.name, ensure=False)
        for _ in range(limit):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            headers = dict(message.headers or {})
            headers[ATTEMPT_HEADER] = 0
            headers.pop(REASON_HEADER, None)
            copy = aio_pika.Message(
                message.body,
                headers=headers,
                message_id=message.message_id,
                content_type=message.content_type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            await internal.publish(
                copy, routing_key=topology.work_queue_name(service), mandatory=True
            )
            await message.ack()
            moved += 1
    return moved


def queue_info(settings: Settings, name: str) -> dict[str, Any]:
    """The management API's view of a queue: arguments, message counts, consumers."""
    vhost = quote(settings.amqp_vhost, safe="")
    with _client(settings) as http:
        body: dict[str, Any] = (
            http.get(f"/api/queues/{vhost}/{quote(name, safe='')}").raise_for_status().json()
        )
        return body
