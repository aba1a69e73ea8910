"""Follow-up composition root."""

from fastapi import FastAPI

from shared.messaging import EventBus
from shared.service import service_app
from shared.settings import Settings, get_settings
from shared.store import Repository, mongo_client

from . import api, consumers
from .adapters import FeedbackTokens
from .domain import Case

DESCRIPTION = "承办、跟踪、反馈 — department work on assigned opinions, deadlines and feedback."


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    bus = EventBus("followup", settings)
    mongo = mongo_client(settings)
    cases = Repository(mongo[settings.database("followup")].cases, Case, bus)
    consumers.subscribe(bus, cases)
    app = service_app("followup", DESCRIPTION, settings, bus, mongo, [api.router], [cases])
    app.state.ports = api.FollowupPorts(
        cases=cases, tokens=FeedbackTokens(settings.secret, settings.followup_public_url)
    )
    return app
