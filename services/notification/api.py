"""Notification HTTP API: webhook subscriptions and the delivery log."""

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import AnyHttpUrl, BaseModel, Field, field_validator

from shared.auth import Principal, require
from shared.events import EVENT_TYPES
from shared.problems import Problem
from shared.store import Repository

from . import handlers
from .domain import Delivery, Recipient, recipient_id

router = APIRouter(tags=["subscriptions"])

EVENT_NAMES = sorted({cls.name for cls in EVENT_TYPES.values()})


@dataclass
class NotificationPorts:
    recipients: Repository[Recipient]
    deliveries: Repository[Delivery]


def ports(request: Request) -> NotificationPorts:
    return request.app.state.ports


Ports = Annotated[NotificationPorts, Depends(ports)]
Subscriber = Annotated[Principal, Depends(require("subscriptions"))]


class WebhookRequest(BaseModel):
    url: AnyHttpUrl = Field(description="Where to POST events (http or https)")
    event_names: list[str] = Field(
        default_factory=list,
        max_length=50,
        description=f"Events to receive; empty for all. Known: {', '.join(EVENT_NAMES)}",
    )

    @field_validator("event_names")
    @classmethod
    def known_events(cls, names: list[str]) -> list[str]:
        unknown = sorted(set(names) - set(EVENT_NAMES))
        if unknown:
            raise ValueError(f"unknown event names: {', '.join(unknown)}")
        return names


class WebhookView(BaseModel):
    id: str
    url: str
    event_names: list[str]
    created_at: datetime
    active: bool


class WebhookCreated(WebhookView):
    secret: str = Field(description="Verify X-Minyi-Signature with this; shown only once")


def _rid(principal: Principal) -> str:
    return recipient_id(principal.role.value, principal.subject)


@router.post("/subscriptions/webhooks", status_code=201, summary="Subscribe a webhook")
async def create_webhook(body: WebhookRequest, p: Ports, principal: Subscriber) -> WebhookCreated:
    subscription = await handlers.subscribe_webhook(
        p.recipients, _rid(principal), str(body.url), body.event_names, secrets.token_urlsafe(32)
    )
    return WebhookCreated.model_validate(subscription, from_attributes=True)


@router.get("/subscriptions/webhooks", summary="Your webhook subscriptions")
async def list_webhooks(p: Ports, principal: Subscriber) -> list[WebhookView]:
    recipient = await p.recipients.get(_rid(principal))
    subscriptions = recipient.subscriptions.values() if recipient else []
    return [WebhookView.model_validate(s, from_attributes=True) for s in subscriptions]


@router.delete(
    "/subscriptions/webhooks/{subscription_id}",
    status_code=204,
    summary="Stop a webhook subscription",
)
async def delete_webhook(subscription_id: str, p: Ports, principal: Subscriber) -> Response:
    if not await handlers.unsubscribe_webhook(p.recipients, _rid(principal), subscription_id):
        raise Problem(404, detail=f"No subscription {subscription_id}.")
    return Response(status_code=204)


@router.get("/deliveries", summary="Delivery log of your subscriptions")
async def list_deliveries(
    p: Ports, principal: Subscriber, opinion_id: str | None = None
) -> list[Delivery]:
    query: dict[str, str] = {"recipient": _rid(principal)}
    if opinion_id:
        query["opinion_id"] = opinion_id
    cursor = p.deliveries.collection.find(query).limit(500)
    return [Delivery.model_validate(doc) async for doc in cursor]
