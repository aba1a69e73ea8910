"""Notification composition root."""

from datetime import timedelta

import httpx
from fastapi import FastAPI

from shared.messaging import EventBus
from shared.service import service_app
from shared.settings import Settings, get_settings
from shared.store import KeptRepository, Repository, mongo_client

from . import api, consumers
from .adapters import (
    Destinations,
    EmailChannel,
    QuietHoursHold,
    SmsChannel,
    TemplateOverrides,
    WebhookChannel,
)
from .config import ChannelSettings
from .domain import Delivery, Recipient, Roster, SendSlots
from .handlers import NotificationPorts

DESCRIPTION = (
    "通知 — tells offices, departments, supervisors and members about their opinions' events "
    "by signed webhook, e-mail or SMS, once per event, in Chinese."
)


def create_app(
    settings: Settings | None = None, channel_settings: ChannelSettings | None = None
) -> FastAPI:
    settings = settings or get_settings()
    channel_settings = channel_settings or ChannelSettings()
    bus = EventBus("notification", settings)
    mongo = mongo_client(settings)
    db = mongo[settings.database("notification")]
    deliveries = Repository(db.deliveries, Delivery, bus)
    # Per connect and read; the webhook channel adds an overall deadline per request.
    client = httpx.AsyncClient(timeout=settings.webhook_timeout_seconds, follow_redirects=False)
    own_hosts = {*channel_settings.webhook_own_hosts, *settings.own_hosts()}
    destinations = Destinations(channel_settings.webhook_allow, own_hosts)
    ports = NotificationPorts(
        # Read for every event, changed when someone (un)subscribes.
        recipients=KeptRepository(db.recipients, Recipient, bus),
        rosters=KeptRepository(db.rosters, Roster, bus),
        deliveries=deliveries,
        templates=TemplateOverrides(db.templates),
        channels={
            channel.kind: channel
            for channel in (
                WebhookChannel(client, destinations, channel_settings.webhook_deadline_seconds),
                EmailChannel(channel_settings),
                SmsChannel(client, channel_settings),
            )
        },
        hold=QuietHoursHold(bus, channel_settings.quiet_recheck_ms),
        destinations=destinations,
        claim_lease=timedelta(seconds=channel_settings.claim_lease_seconds),
        max_attempts=settings.max_attempts,
        slots=SendSlots(channel_settings.sends_per_subscription),
        subscriptions_per_recipient=channel_settings.subscriptions_per_recipient,
    )
    consumers.subscribe(bus, ports)
    app = service_app(
        "notification",
        DESCRIPTION,
        settings,
        bus,
        mongo,
        [api.router, api.templates],
        [deliveries],
        on_stop=[client.aclose],
    )
    app.state.ports = ports
    return app
