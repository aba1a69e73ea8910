"""RabbitMQ administration through the management HTTP API: the vhost, one user per service
with permissions limited to its own queues, and the parking-lot tools (inspect, replay)."""

import re
from typing import Any
from urllib.parse import quote, urlsplit

import aio_pika
import httpx

from shared import topology
from shared.messaging import ATTEMPT_HEADER, REASON_HEADER, ROUTING_KEY_HEADER
from shared.settings import SERVICES, Settings


def _client(settings: Settings) -> httpx.Client:
    parts = urlsplit(settings.rabbit_admin_url)
    base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}"
    return httpx.Client(
        base_url=base, auth=(parts.username or "guest", parts.password or "guest"), timeout=10
    )


def service_permissions(service: str) -> dict[str, str]:
    """A service may configure, write and read its own queues and the two shared exchanges."""
    own = rf"^(minyi\.events|minyi\.dlx|{re.escape(topology.work_queue_name(service))}(\..+)?)$"
    return {"configure": own, "write": own, "read": own}


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
        for service in SERVICES:
            user = f"minyi-{service}"
            body = {"password": settings.service_password, "tags": ""}
            http.put(f"/api/users/{user}", json=body).raise_for_status()
            perms = service_permissions(service)
            http.put(f"/api/permissions/{vhost}/{user}", json=perms).raise_for_status()
            done.append(f"user {user}")
    return done


def delete_vhost(settings: Settings) -> None:
    with _client(settings) as http:
        response = http.delete(f"/api/vhosts/{quote(settings.amqp_vhost, safe='')}")
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
