"""Intake composition root."""

from fastapi import FastAPI

from shared.messaging import EventBus
from shared.service import service_app
from shared.settings import Settings, get_settings
from shared.store import Repository, mongo_client

from . import api
from .adapters import TrackingNumbers
from .domain import Opinion

DESCRIPTION = "登记 — district offices register opinions; each gets a tracking number at once."


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    bus = EventBus("intake", settings)
    mongo = mongo_client(settings)
    db = mongo[settings.database("intake")]
    opinions = Repository(db.opinions, Opinion, bus)
    app = service_app("intake", DESCRIPTION, settings, bus, mongo, [api.router], [opinions])
    app.state.ports = api.IntakePorts(opinions=opinions, numbers=TrackingNumbers(db))
    return app
