"""Routing composition root."""

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from pymongo.asynchronous.database import AsyncDatabase

from shared.messaging import EventBus
from shared.service import service_app
from shared.settings import Settings, get_settings
from shared.store import Document, KeptRepository, Repository, mongo_client

from . import api, consumers, handlers
from .adapters import ModelStore, RoutingViews, TopicWindow
from .classifier import MAX_TRAINING_BYTES, TrainingDataError
from .domain import Decision, Directory
from .handlers import RoutingPorts
from .topics.domain import Topic, TopicDay
from .topics.handlers import TopicIntake, TopicPorts

DESCRIPTION = "分类、交办 — classifies opinions and assigns the responsible departments."

log = logging.getLogger("minyi.routing")
# A crashed replica's claim on the scheduled retraining lapses after this long.
TRAINING_HOLD = timedelta(minutes=30)


class RoutingSettings(BaseSettings):
    """Routing's own knobs (prefix ``MINYI_ROUTING_``)."""

    model_config = SettingsConfigDict(env_prefix="MINYI_ROUTING_")

    # How often a replica looks for a newly activated model version.
    model_refresh_seconds: float = 3.0
    # Scheduled retraining: how often to look for new staff corrections (0 turns it off).
    retrain_every_seconds: float = 3600.0
    # 专题: the sliding window, and the 热度 at which supervisors are told (topic.heated).
    topic_window_days: int = Field(default=30, ge=1, le=365)
    topic_heat_alert: float = Field(default=10.0, gt=0)


def routing_ports(db: AsyncDatabase[Document], bus: EventBus, refresh: float) -> RoutingPorts:
    """The routing repositories and stores on the service's own database."""
    return RoutingPorts(
        decisions=Repository(db.decisions, Decision, bus),
        directories=KeptRepository(db.directory, Directory, bus),  # read for every opinion
        models=ModelStore(db, refresh),
        views=RoutingViews(db),
    )


def topic_ports(
    db: AsyncDatabase[Document], bus: EventBus, routing: "RoutingSettings"
) -> TopicPorts:
    """The 专题 repositories on routing's database."""
    return TopicPorts(
        topics=Repository(db.topics, Topic, bus),
        window=TopicWindow(db, Repository(db.topic_days, TopicDay, bus)),
        span=timedelta(days=routing.topic_window_days),
        heat_alert=routing.topic_heat_alert,
    )


async def _corrections_pending(ports: RoutingPorts) -> bool:
    """Staff examples exist that the active model was not trained with."""
    version = await ports.models.active_version()
    info = None if version is None else await ports.models.info(version)
    used = 0 if info is None else int(info.get("examples_used", 0))
    return await ports.views.count_examples() > used


async def retrain_on_schedule(ports: RoutingPorts, every: float) -> None:
    """Forever: retrain when staff corrections arrived since the active model was trained;
    one replica at a time claims the round."""
    owner = f"{socket.gethostname()}-{os.getpid()}-{id(ports)}"
    while True:
        await asyncio.sleep(every)
        try:
            if not await _corrections_pending(ports):
                continue
            if not await ports.models.claim_retraining(owner, TRAINING_HOLD):
                continue
            try:
                # Looked again under the claim: another replica may have just retrained.
                if await _corrections_pending(ports):
                    trained = await handlers.retrain("schedule", ports)
                    log.info("retrained on schedule", extra={"version": trained["version"]})
            finally:
                await ports.models.release_retraining(owner)
        except TrainingDataError as exc:
            log.warning("scheduled retraining skipped: %s", exc)
        except Exception:
            log.exception("scheduled retraining failed; will try again")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # Training files are uploaded here, so this service accepts bodies up to their limit.
    settings = settings.model_copy(
        update={"max_body_bytes": max(settings.max_body_bytes, MAX_TRAINING_BYTES)}
    )
    routing = RoutingSettings()
    bus = EventBus("routing", settings)
    mongo = mongo_client(settings)
    db = mongo[settings.database("routing")]
    ports = routing_ports(db, bus, routing.model_refresh_seconds)
    topics = topic_ports(db, bus, routing)
    consumers.subscribe(bus, ports, TopicIntake(topics))
    app = service_app(
        "routing", DESCRIPTION, settings, bus, mongo, [api.router], [ports.decisions, topics.topics]
    )
    app.state.ports = ports
    app.state.topic_ports = topics
    if routing.retrain_every_seconds > 0:
        inner = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            async with inner(app):
                task = asyncio.create_task(
                    retrain_on_schedule(ports, routing.retrain_every_seconds)
                )
                try:
                    yield
                finally:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

        app.router.lifespan_context = lifespan
    return app
