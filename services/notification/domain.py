"""Notification domain: who wants which events, through which channel and address, when they
must not be disturbed, and what was delivered. No I/O."""

import hashlib
import hmac
import ipaddress
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import ClassVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, field_serializer, model_validator

from shared.events import EventData
from shared.privacy import mask_personal_data
from shared.store import Aggregate

# Quiet hours are local office hours in China.
LOCAL_TIME = ZoneInfo("Asia/Shanghai")

# Events the notification service publishes about its own work: never delivered or re-handled,
# or every delivery would cause another one.
OWN_EVENTS_PREFIX = "notification."

# 中国大陆手机号, optionally with the country code.
MOBILE_PHONE = r"^(\+86)?1[3-9]\d{9}$"


class ChannelKind(StrEnum):
    WEBHOOK = "webhook"
    EMAIL = "email"
    SMS = "sms"


class RecipientRole(StrEnum):
    OFFICE = "office"  # 区政协/人大办公室 …: every event of the opinions it registered
    DEPARTMENT = "department"  # 承办单位: events addressed to it
    SUPERVISOR = "supervisor"  # 督办: any event it subscribes to (breaches, escalations …)
    MEMBER = "member"  # 委员/代表: events of the opinions they submitted


class QuietHours(BaseModel):
    """免打扰 — local (Beijing) time window in which nothing is sent; may span midnight."""

    start: time
    end: time

    @field_serializer("start", "end")
    def as_text(self, moment: time) -> str:
        # BSON has no time-of-day type; "22:00" reads back as the same time.
        return moment.isoformat(timespec="minutes")

    @model_validator(mode="after")
    def not_empty(self) -> "QuietHours":
        if self.start == self.end:
            raise ValueError("quiet hours start and end must differ")
        return self

    def ends_after(self, now: datetime) -> timedelta | None:
        """How long until the window ends, if ``now`` falls inside it; else None."""
        local = now.astimezone(LOCAL_TIME)
        at = local.time().replace(tzinfo=None)
        inside = (
            self.start <= at < self.end
            if self.start < self.end
            else at >= self.start or at < self.end
        )
        if not inside:
            return None
        end = datetime.combine(local.date(), self.end, LOCAL_TIME)
        if end <= local:
            end += timedelta(days=1)
        return end - local


class Subscription(BaseModel):
    """One address of a recipient on one channel, and which events it wants there."""

    # After this many permanent failures in a row a subscription is switched off.
    disable_after: ClassVar[int] = 3

    id: str
    channel: ChannelKind = ChannelKind.WEBHOOK
    # URL, e-mail address or mobile number, by channel.
    address: str
    # Event names such as "assignment.replied"; empty means every event the recipient gets.
    event_names: list[str]
    # Webhook signing secret; empty for e-mail and SMS.
    secret: str = ""
    quiet_hours: QuietHours | None = None
    created_at: datetime
    active: bool = True
    permanent_failures: int = 0
    disabled_reason: str | None = None

    def record_success(self) -> None:
        self.permanent_failures = 0

    def record_permanent_failure(self, reason: str, gone: bool) -> bool:
        """Count a permanent failure; switch off after repeated ones (at once on 410 Gone).
        Returns True if this switched the subscription off."""
        self.permanent_failures += 1
        if self.active and (gone or self.permanent_failures >= self.disable_after):
            self.active = False
            self.disabled_reason = reason
            return True
        return False

    def enable(self) -> None:
        self.active = True
        self.permanent_failures = 0
        self.disabled_reason = None


class Recipient(Aggregate):
    """An office, department, supervisor or member and its subscriptions; id ``<role>:<code>``.
    A member belongs to the office whose roster it is on (``owner``): only that office manages
    its subscriptions."""

    subscriptions: dict[str, Subscription]
    owner: str | None = None

    def wants(self, event_name: str) -> list[Subscription]:
        return [
            s
            for s in self.subscriptions.values()
            if s.active and (not s.event_names or event_name in s.event_names)
        ]

    def has_address(self, channel: ChannelKind, address: str) -> bool:
        return any(
            s.active and s.channel == channel and s.address == address
            for s in self.subscriptions.values()
        )


class Roster(Aggregate):
    """The recipients of a role that receive events not addressed to them by the event itself
    (supervisors): read by ``_id`` instead of scanning recipients. Id ``roster:<role>``."""

    members: dict[str, bool] = Field(default_factory=dict)


class DeliveryStatus(StrEnum):
    SENDING = "sending"  # claimed by a consumer that is sending it now
    HELD = "held"  # quiet hours: sent when they end
    FAILING = "failing"  # a transient failure; the event is retried
    FAILED = "failed"  # a permanent failure; the event is parked with the reason
    DELIVERED = "delivered"


class Delivery(Aggregate):
    """One event to one address of one recipient on one channel. The id
    ``<event id>:<recipient>:<channel>:<subscription id>`` makes it unique, so a redelivered
    event finds it and sends nothing twice."""

    event_id: str
    event_type: str
    opinion_id: str
    recipient: str
    channel: ChannelKind = ChannelKind.WEBHOOK
    subscription_id: str
    status: DeliveryStatus
    attempts: int
    claimed_at: datetime | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None

    def claimable(self, now: datetime, lease: timedelta) -> bool:
        """Another consumer may be sending this right now unless its claim has run out."""
        if self.status == DeliveryStatus.DELIVERED:
            return False
        if self.status == DeliveryStatus.SENDING and self.claimed_at is not None:
            return now - self.claimed_at > lease
        return True


def delivery_id(event_id: str, recipient: str, subscription: Subscription) -> str:
    return f"{event_id}:{recipient}:{subscription.channel.value}:{subscription.id}"


def recipient_id(role: str, subject: str) -> str:
    return f"{role}:{subject}"


def role_of(recipient: str) -> RecipientRole:
    return RecipientRole(recipient.partition(":")[0])


# Events that go only to some of the recipients they name, and never to supervisors: the
# feedback link is the submitter's (回访), passed on by the registering office (or reaching
# the member it names); the whole opinion (交办材料) is the department's working copy.
ONLY_TO: dict[str, frozenset[RecipientRole]] = {
    "feedback.requested": frozenset({RecipientRole.OFFICE, RecipientRole.MEMBER}),
    "opinion.briefed": frozenset({RecipientRole.DEPARTMENT}),
}


def recipients_of(payload: EventData) -> list[str]:
    """The office, department and members (the lead and co-signers) an event concerns
    (supervisors come from the roster)."""
    found = []
    if office := getattr(payload, "office_id", None):
        found.append(recipient_id(RecipientRole.OFFICE, office))
    if department := getattr(payload, "department", None):
        found.append(recipient_id(RecipientRole.DEPARTMENT, department))
    if member := getattr(payload, "member_id", None):
        found.append(recipient_id(RecipientRole.MEMBER, member))
    # 联名: every co-signer gets what the lead member gets.
    for co_signer in getattr(payload, "co_signers", []):
        found.append(recipient_id(RecipientRole.MEMBER, co_signer))
    if (only := ONLY_TO.get(payload.name)) is not None:
        return [rid for rid in found if role_of(rid) in only]
    return found


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``X-Minyi-Signature`` value: HMAC-SHA256 over ``<timestamp>.<body>``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def mask_address(channel: ChannelKind, address: str) -> str:
    """How an address is shown back in lists: phone numbers masked, the rest as is."""
    return mask_personal_data(address) if channel == ChannelKind.SMS else address


class Message(BaseModel):
    """What a channel sends: the rendered subject (the SMS text too) and body, and for webhooks
    the JSON body to sign."""

    delivery_id: str
    address: str
    subject: str
    text: str
    body: bytes
    secret: str = ""
    # For SMS templates: the event name and the template's parameters.
    event_name: str = ""
    params: dict[str, str] = Field(default_factory=dict)


# -- where webhooks may go (SSRF) ------------------------------------------------------------


def refusal_of_url(scheme: str, userinfo: bool) -> str | None:
    """Why a webhook URL is refused whatever its host, or None."""
    if scheme not in ("http", "https"):
        return "only http and https"
    if userinfo:
        return "no user or password in the URL"
    return None


def refusal_of_address(address: str) -> str | None:
    """Why an IP address is no place for a webhook (loopback, private, link-local, reserved,
    multicast, unspecified — IPv4-mapped IPv6 judged as its IPv4), or None."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # is_global is False for loopback, private, link-local, reserved, shared and unspecified.
    if not ip.is_global or ip.is_multicast:
        return "not a public address"
    return None


def allowed_exception(host: str, port: int, allow: list[str]) -> bool:
    """Whether ``host:port`` is one of the explicit exceptions ("host:port", "host:lo-hi")."""
    for entry in allow:
        allowed_host, _, ports = entry.rpartition(":")
        first, _, last = ports.partition("-")
        if allowed_host == host and int(first) <= port <= int(last or first):
            return True
    return False


class SendSlots:
    """How many sends to each subscription are under way in this process, so one slow
    receiver holds at most ``per_subscription`` of the consumer's handlers."""

    def __init__(self, per_subscription: int) -> None:
        self.per_subscription = per_subscription
        self.busy: dict[str, int] = {}

    def take(self, subscription_id: str) -> bool:
        if self.busy.get(subscription_id, 0) >= self.per_subscription:
            return False
        self.busy[subscription_id] = self.busy.get(subscription_id, 0) + 1
        return True

    def give_back(self, subscription_id: str) -> None:
        left = self.busy.pop(subscription_id, 1) - 1
        if left:
            self.busy[subscription_id] = left
