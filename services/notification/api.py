"""Notification HTTP API: subscriptions (webhook, e-mail, SMS), templates and the delivery log."""

import re
import secrets
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    EmailStr,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from shared.auth import Principal, Role, require
from shared.events import EVENT_TYPES
from shared.problems import Problem

from . import handlers, rendering
from .domain import (
    MOBILE_PHONE,
    OWN_EVENTS_PREFIX,
    ChannelKind,
    Delivery,
    QuietHours,
    RecipientRole,
    Subscription,
    mask_address,
    recipient_id,
)

router = APIRouter(tags=["subscriptions"])

EVENT_NAMES = sorted(
    {cls.name for cls in EVENT_TYPES.values() if not cls.name.startswith(OWN_EVENTS_PREFIX)}
)
RECIPIENT = r"^(office|department|supervisor|member):[A-Za-z0-9_-]{1,64}$"
_URL = TypeAdapter(AnyHttpUrl)
_EMAIL = TypeAdapter(EmailStr)


def ports(request: Request) -> handlers.NotificationPorts:
    return request.app.state.ports


Ports = Annotated[handlers.NotificationPorts, Depends(ports)]
Subscriber = Annotated[Principal, Depends(require("subscriptions"))]
Admin = Annotated[Principal, Depends(require("templates"))]


def _known_events(names: list[str]) -> list[str]:
    unknown = sorted(set(names) - set(EVENT_NAMES))
    if unknown:
        raise ValueError(f"未知事件 / unknown event names: {', '.join(unknown)}")
    return names


class SubscriptionRequest(BaseModel):
    channel: ChannelKind = Field(description="webhook, email or sms")
    address: str = Field(
        min_length=1,
        max_length=500,
        description="Webhook: http(s) URL; email: e-mail address; sms: mainland mobile number",
    )
    event_names: list[str] = Field(
        default_factory=list,
        max_length=50,
        description=f"Events to receive; empty for all. Known: {', '.join(EVENT_NAMES)}",
    )
    quiet_hours: QuietHours | None = Field(
        default=None, description="免打扰: nothing is sent between start and end (Beijing time)"
    )
    recipient: str | None = Field(
        default=None,
        pattern=RECIPIENT,
        description="<role>:<code> to subscribe for someone else: an office may subscribe its "
        "members (member:<id>), an administrator anyone. Default: the caller.",
    )

    _events = field_validator("event_names")(_known_events)

    @field_validator("address")
    @classmethod
    def address_fits_channel(cls, address: str, info: ValidationInfo) -> str:
        channel = info.data.get("channel")
        address = address.strip()
        try:
            if channel == ChannelKind.WEBHOOK:
                return str(_URL.validate_python(address))
            if channel == ChannelKind.EMAIL:
                return str(_EMAIL.validate_python(address))
        except ValidationError:
            raise ValueError(
                f"不是有效的{'网址' if channel == ChannelKind.WEBHOOK else '电子邮箱'} / "
                f"not a valid {'http(s) URL' if channel == ChannelKind.WEBHOOK else 'e-mail'}"
            ) from None
        if channel == ChannelKind.SMS:
            compact = re.sub(r"[\s-]", "", address)
            if not re.fullmatch(MOBILE_PHONE, compact):
                raise ValueError("不是有效的手机号 / not a valid mainland China mobile number")
            return compact.removeprefix("+86")
        return address


class WebhookRequest(BaseModel):
    """The short form for webhooks (kept for existing clients)."""

    url: AnyHttpUrl = Field(description="Where to POST events (http or https)")
    event_names: list[str] = Field(default_factory=list, max_length=50)

    _events = field_validator("event_names")(_known_events)


class SubscriptionView(BaseModel):
    id: str
    recipient: str
    channel: ChannelKind
    address: str = Field(description="Mobile numbers are shown masked")
    event_names: list[str]
    quiet_hours: QuietHours | None
    created_at: datetime
    active: bool
    disabled_reason: str | None

    @classmethod
    def of(cls, rid: str, s: Subscription) -> "SubscriptionView":
        return cls(
            id=s.id,
            recipient=rid,
            channel=s.channel,
            address=mask_address(s.channel, s.address),
            event_names=s.event_names,
            quiet_hours=s.quiet_hours,
            created_at=s.created_at,
            active=s.active,
            disabled_reason=s.disabled_reason,
        )


class SubscriptionCreated(SubscriptionView):
    secret: str | None = Field(
        description="Webhooks: verify X-Minyi-Signature with this; shown only once"
    )


async def _recipient(p: handlers.NotificationPorts, principal: Principal, asked: str | None) -> str:
    """Whose subscriptions the caller may manage: its own, the members on its roster
    (offices), anyone's (administrators)."""
    if principal.role == Role.ADMIN:
        if asked is None:
            raise Problem(422, detail="An administrator must name the recipient (recipient).")
        return asked
    own = recipient_id(principal.role.value, principal.subject)
    if asked is None or asked == own:
        return own
    if (
        principal.role == Role.OFFICE
        and asked.startswith(f"{RecipientRole.MEMBER.value}:")
        and await handlers.may_manage(p.recipients, principal.subject, asked)
    ):
        return asked
    raise Problem(
        403,
        detail=f"A {principal.role.value} key may not manage {asked}; an office manages only "
        "the members on its own roster 仅可管理本单位名册中的委员/代表.",
    )


async def _create(
    p: handlers.NotificationPorts,
    rid: str,
    channel: ChannelKind,
    address: str,
    event_names: list[str],
    quiet_hours: QuietHours | None,
) -> SubscriptionCreated:
    try:
        subscription = await handlers.subscribe(
            p, rid, channel, address, event_names, quiet_hours, secrets.token_urlsafe(32)
        )
    except handlers.AlreadySubscribed as exc:
        raise Problem(409, detail=str(exc)) from None
    view = SubscriptionView.of(rid, subscription)
    return SubscriptionCreated(**view.model_dump(), secret=subscription.secret or None)


@router.post("/subscriptions", status_code=201, summary="Subscribe an address on a channel")
async def create_subscription(
    body: SubscriptionRequest, p: Ports, principal: Subscriber
) -> SubscriptionCreated:
    rid = await _recipient(p, principal, body.recipient)
    return await _create(p, rid, body.channel, body.address, body.event_names, body.quiet_hours)


@router.post("/subscriptions/webhooks", status_code=201, summary="Subscribe a webhook")
async def create_webhook(
    body: WebhookRequest, p: Ports, principal: Subscriber
) -> SubscriptionCreated:
    rid = await _recipient(p, principal, None)
    return await _create(p, rid, ChannelKind.WEBHOOK, str(body.url), body.event_names, None)


RecipientQuery = Annotated[
    str | None, Query(pattern=RECIPIENT, description="<role>:<code>; default: the caller")
]


@router.get("/subscriptions", summary="Subscriptions of the caller (or of a recipient it manages)")
async def list_subscriptions(
    p: Ports, principal: Subscriber, recipient: RecipientQuery = None
) -> list[SubscriptionView]:
    rid = await _recipient(p, principal, recipient)
    found = await p.recipients.get(rid)
    subscriptions = found.subscriptions.values() if found else []
    return [SubscriptionView.of(rid, s) for s in subscriptions]


async def _switch(
    p: handlers.NotificationPorts, rid: str, subscription_id: str, active: bool
) -> Subscription:
    subscription = await handlers.set_active(p.recipients, rid, subscription_id, active)
    if subscription is None:
        raise Problem(404, detail=f"No subscription {subscription_id} of {rid}.")
    return subscription


@router.delete("/subscriptions/{subscription_id}", status_code=204, summary="Unsubscribe")
async def delete_subscription(
    subscription_id: str, p: Ports, principal: Subscriber, recipient: RecipientQuery = None
) -> Response:
    await _switch(p, await _recipient(p, principal, recipient), subscription_id, active=False)
    return Response(status_code=204)


@router.post(
    "/subscriptions/{subscription_id}/enable",
    summary="Switch a subscription on again (e.g. after it was switched off for failing)",
)
async def enable_subscription(
    subscription_id: str, p: Ports, principal: Subscriber, recipient: RecipientQuery = None
) -> SubscriptionView:
    rid = await _recipient(p, principal, recipient)
    return SubscriptionView.of(rid, await _switch(p, rid, subscription_id, active=True))


@router.get("/deliveries", summary="Delivery log of your subscriptions")
async def list_deliveries(
    p: Ports, principal: Subscriber, opinion_id: str | None = None, recipient: RecipientQuery = None
) -> list[Delivery]:
    query: dict[str, str] = {"recipient": await _recipient(p, principal, recipient)}
    if opinion_id:
        query["opinion_id"] = opinion_id
    cursor = p.deliveries.collection.find(query).limit(500)
    return [Delivery.model_validate(doc) async for doc in cursor]


templates = APIRouter(prefix="/templates", tags=["templates"])

EventName = Annotated[str, Path(description="An event name such as opinion.assigned")]


def _event_name(event_name: str) -> str:
    if event_name not in EVENT_NAMES:
        raise Problem(404, detail=f"Unknown event {event_name!r}; known: {', '.join(EVENT_NAMES)}")
    return event_name


class TemplateBody(BaseModel):
    source: str = Field(
        min_length=1,
        max_length=20_000,
        description="Jinja2 text: first line is the subject (and the SMS), the rest the body. "
        "Variables: event (id, type, time, subject), data (the masked payload), role, "
        "greeting, label; filter `local` formats a time in Beijing time.",
    )

    @field_validator("source")
    @classmethod
    def compiles(cls, source: str) -> str:
        try:
            rendering.compile_template(source)
        except rendering.TemplateError as exc:
            raise ValueError(f"模板语法错误 / template syntax error: {exc}") from None
        return source


class TemplateView(BaseModel):
    event_name: str
    role: RecipientRole
    source: str
    overridden: bool


@templates.get("/{event_name}/{role}", summary="The template used for an event and role")
async def get_template(
    event_name: EventName, role: RecipientRole, p: Ports, _: Admin
) -> TemplateView:
    name = _event_name(event_name)
    override = await p.templates.get(name, role)
    if override is not None:
        return TemplateView(event_name=name, role=role, source=override, overridden=True)
    source = rendering.builtin_source(name, role)
    return TemplateView(event_name=name, role=role, source=source, overridden=False)


@templates.put("/{event_name}/{role}", summary="Replace the template for an event and role")
async def put_template(
    event_name: EventName, role: RecipientRole, body: TemplateBody, p: Ports, admin: Admin
) -> TemplateView:
    name = _event_name(event_name)
    await p.templates.put(name, role, body.source, admin.name)
    return TemplateView(event_name=name, role=role, source=body.source, overridden=True)


@templates.delete(
    "/{event_name}/{role}", status_code=204, summary="Go back to the built-in template"
)
async def delete_template(
    event_name: EventName, role: RecipientRole, p: Ports, _: Admin
) -> Response:
    if not await p.templates.delete(_event_name(event_name), role):
        raise Problem(404, detail=f"No stored template for {event_name} / {role.value}.")
    return Response(status_code=204)
