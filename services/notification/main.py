"""Notification composition root."""

import httpx
from fastapi import FastAPI

from shared.messaging import EventBus
from shared.service import service_app
from shared.settings import Settings, get_settings
from shared.store import Repository, mongo_client

from . import api, consumers
from .adapters import WebhookChannel
from .domain import Delivery, Recipient

DESCRIPTION = "通知 — delivers events to offices and departments by signed webhook."


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    bus = EventBus("notification", settings)
    mongo = mongo_client(settings)
    db = mongo[settings.database("notification")]
    recipients = Repository(db.recipients, Recipient, bus)
    deliveries = Repository(db.deliveries, Delivery, bus)
    client = httpx.AsyncClient(timeout=settings.webhook_timeout_seconds)
    consumers.subscribe(bus, recipients, deliveries, WebhookChannel(client))
    app = service_app(
        "notification", DESCRIPTION, settings, bus, mongo, [api.router], on_stop=[client.aclose]
    )
    app.state.ports = api.NotificationPorts(recipients=recipients, deliveries=deliveries)
    return app
