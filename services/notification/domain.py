"""Notification domain: who wants which events, where, and what was delivered. No I/O."""

import hashlib
import hmac
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel

from shared.events import EventData
from shared.store import Aggregate


class WebhookSubscription(BaseModel):
    id: str
    url: str
    # Event names such as "assignment.replied"; empty means every event addressed to the recipient.
    event_names: list[str]
    secret: str
    created_at: datetime
    active: bool = True


class Recipient(Aggregate):
    """An office or department and its webhook subscriptions; id ``<role>:<code>``."""

    subscriptions: dict[str, WebhookSubscription]

    def wants(self, event_name: str) -> list[WebhookSubscription]:
        return [
            s
            for s in self.subscriptions.values()
            if s.active and (not s.event_names or event_name in s.event_names)
        ]


class DeliveryStatus(StrEnum):
    FAILING = "failing"
    DELIVERED = "delivered"


class Delivery(Aggregate):
    """One event to one subscription; id ``<event id>:<subscription id>`` makes it unique."""

    event_id: str
    event_type: str
    opinion_id: str
    recipient: str
    subscription_id: str
    status: DeliveryStatus
    attempts: int
    last_error: str | None = None
    delivered_at: datetime | None = None


def recipient_id(role: str, subject: str) -> str:
    return f"{role}:{subject}"


def recipients_of(payload: EventData) -> list[str]:
    """The office and the department an event concerns."""
    found = []
    if office := getattr(payload, "office_id", None):
        found.append(recipient_id("office", office))
    if department := getattr(payload, "department", None):
        found.append(recipient_id("department", department))
    return found


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``X-Minyi-Signature`` value: HMAC-SHA256 over ``<timestamp>.<body>``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"
