"""Routing composition root."""

from fastapi import FastAPI

from shared.messaging import EventBus
from shared.service import service_app
from shared.settings import Settings, get_settings
from shared.store import Repository, mongo_client

from . import api, consumers
from .domain import Decision

DESCRIPTION = "分类、交办 — classifies opinions and assigns the responsible departments."


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    bus = EventBus("routing", settings)
    mongo = mongo_client(settings)
    decisions = Repository(mongo[settings.database("routing")].decisions, Decision, bus)
    consumers.subscribe(bus, decisions)
    app = service_app("routing", DESCRIPTION, settings, bus, mongo, [api.router], [decisions])
    app.state.decisions = decisions
    return app
