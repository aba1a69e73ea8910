"""The pipeline's hops with nothing in them: the most this architecture can carry on a machine.

Four processes built from the same parts as the services (FastAPI on uvicorn, FastStream on
quorum queues with confirms and persistent messages, pydantic CloudEvents, an httpx webhook
POST) and the same topology, but with no store, no rules and no retries:

    POST /opinions -> accept -opinion.received-> route -opinion.assigned.x-> follow (acks)
                                                                        \\-> notify -> webhook

``notify`` binds ``#`` like the notification service, so it also takes every opinion.received.
The benchmark drives it exactly as it drives the real pipeline; what the real pipeline reaches
of this ceiling is what the services' own work (stores, rules, idempotency) costs.

Run by the benchmark as ``python -m tools.hops <role> <name> <port> <webhook url>``."""

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from faststream.rabbit import (
    ExchangeType,
    QueueType,
    RabbitBroker,
    RabbitExchange,
    RabbitQueue,
)
from faststream.rabbit.schemas import Channel

from services.intake.domain import OpinionSubmission
from shared.events import CE_CONTENT_TYPE, CloudEvent, new_id, utcnow
from shared.messaging import raw_body
from shared.settings import Settings, get_settings

ROLES = ("accept", "route", "follow", "notify")
BINDINGS = {"route": "opinion.received", "follow": "opinion.assigned.*", "notify": "#"}


def exchange(name: str) -> RabbitExchange:
    return RabbitExchange(name, type=ExchangeType.TOPIC, auto_delete=True)


def queue(name: str, role: str) -> RabbitQueue:
    return RabbitQueue(
        f"{name}.{role}",
        queue_type=QueueType.QUORUM,
        durable=True,
        routing_key=BINDINGS[role],
    )


def broker_url(settings: Settings) -> str:
    """The administrator's URL (guest locally): the scratch exchange is nobody's own."""
    return f"amqp://guest:guest@{settings.amqp_host}:{settings.amqp_port}/{settings.amqp_vhost}"


def main(role: str, name: str, port: int, webhook: str) -> None:
    settings = get_settings()
    broker = RabbitBroker(
        broker_url(settings),
        default_channel=Channel(
            prefetch_count=settings.prefetch, publisher_confirms=True, on_return_raises=True
        ),
        log_level=10,  # per-message logs at DEBUG, as the services have them
    )
    events = exchange(name)

    async def publish(event: CloudEvent, key: str) -> None:
        await broker.publish(
            event.model_dump_json().encode(),
            exchange=events,
            routing_key=key,
            persist=True,
            mandatory=True,
            message_id=event.id,
            content_type=CE_CONTENT_TYPE,
        )

    if role == "route":

        @broker.subscriber(queue(name, role), events, decoder=raw_body)
        async def route(body: bytes) -> None:
            event = CloudEvent.model_validate_json(body)
            assigned = event.model_copy(
                update={"id": new_id(), "type": "minyi.opinion.assigned.v1", "time": utcnow()}
            )
            await publish(assigned, "opinion.assigned.x")

    elif role == "follow":

        @broker.subscriber(queue(name, role), events, decoder=raw_body)
        async def follow(body: bytes) -> None:
            CloudEvent.model_validate_json(body)

    elif role == "notify":
        http = httpx.AsyncClient(timeout=settings.webhook_timeout_seconds)

        @broker.subscriber(queue(name, role), events, decoder=raw_body)
        async def notify(body: bytes) -> None:
            event = CloudEvent.model_validate_json(body)
            if event.type == "minyi.opinion.assigned.v1":
                response = await http.post(
                    webhook, content=body, headers={"X-Minyi-Delivery": event.id}
                )
                response.raise_for_status()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await broker.start()
        yield
        await broker.stop()

    app = FastAPI(lifespan=lifespan)

    @app.post("/opinions", status_code=201)
    async def accept(submission: OpinionSubmission) -> dict[str, Any]:
        opinion_id = new_id()
        data = {**submission.model_dump(mode="json"), "received_at": utcnow().isoformat()}
        event = CloudEvent(
            id=new_id(),
            source="/minyi/hops",
            type="minyi.opinion.received.v1",
            time=utcnow(),
            subject=opinion_id,
            data=data,
        )
        await publish(event, "opinion.received")
        return {"id": opinion_id}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
