"""Notification adapters: the channels (plugins behind one small interface), the stored
template overrides, and the quiet-hours hold on a RabbitMQ TTL wait queue."""

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Protocol

import aiosmtplib
import httpx
from pymongo.asynchronous.collection import AsyncCollection

from shared import topology
from shared.events import CE_CONTENT_TYPE, CloudEvent, utcnow
from shared.messaging import ROUTING_KEY_HEADER, EventBus
from shared.store import Document, Kept, upsert_by_id

from .config import ChannelSettings
from .domain import (
    ChannelKind,
    Message,
    RecipientRole,
    allowed_exception,
    refusal_of_address,
    refusal_of_url,
    signature,
)

log = logging.getLogger("minyi.notification")

# What the delivery log and a switched-off subscription say about a webhook's failure: the
# same few words whatever happened, so the log cannot be used to scan ports or read answers.
NOT_ACCEPTED = "接收方暂未接收，稍后重试 / not accepted, trying again later"
REFUSED = "接收方拒绝接收 / refused by the receiver"
GONE = "接收方已停用此地址 / the receiver has gone (410)"
NOT_ALLOWED = "不允许的地址 / address not allowed"


class DeliveryError(Exception):
    """The receiver did not take the delivery this time; trying again later may help.
    ``public`` is what the delivery log shows; the message itself (for operators: logs and the
    parking lot) may say more."""

    def __init__(self, reason: str, public: str | None = None) -> None:
        super().__init__(reason)
        self.public = public or reason


class PermanentDeliveryError(DeliveryError):
    """The receiver refused the delivery for good (bad address, 4xx, 410 Gone)."""

    def __init__(self, reason: str, gone: bool = False, public: str | None = None) -> None:
        super().__init__(reason, public)
        self.gone = gone


class RefusedDestination(Exception):
    """A webhook URL that may not be used (SSRF guard); the message says why."""


class Destinations:
    """Where webhooks may go: public addresses only, checked on every IP a host resolves to;
    the stack's own hosts never; ``allow`` lists explicit exceptions ("host:port")."""

    def __init__(self, allow: list[str], own_hosts: set[str]) -> None:
        self.allow = allow
        self.own_hosts = {h.lower() for h in own_hosts}

    async def resolve(self, url: str) -> httpx.URL:
        """The URL with its host replaced by a checked IP address, so what is checked is what
        is connected to (no DNS rebinding between the check and the request)."""
        parsed = httpx.URL(url)
        host, port = parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80)
        if why := refusal_of_url(parsed.scheme, bool(parsed.userinfo)):
            raise RefusedDestination(why)
        excepted = allowed_exception(host, port, self.allow)
        if not excepted and host.lower().rstrip(".") in self.own_hosts:
            raise RefusedDestination(f"{host} is a host of the stack itself")
        try:
            found = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except (OSError, UnicodeError) as exc:
            raise RefusedDestination(f"host {host} does not resolve ({exc})") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
        if not addresses:
            raise RefusedDestination(f"host {host} does not resolve")
        for address in [] if excepted else addresses:
            if why := refusal_of_address(address):
                raise RefusedDestination(f"{host}: {why}")
        return parsed.copy_with(host=addresses[0])


class Channel(Protocol):
    """A way to reach a recipient. ``send`` returns when the receiver accepted the message and
    raises DeliveryError (retry later) or PermanentDeliveryError (do not retry)."""

    kind: ChannelKind

    async def send(self, message: Message) -> None: ...


def _check_http_answer(response: httpx.Response) -> None:
    if response.is_success:
        return
    reason = f"HTTP {response.status_code}"
    if response.status_code == 410:
        raise PermanentDeliveryError(f"{reason} Gone", gone=True)
    # 408 and 429 say "later"; any other 4xx will not change by asking again.
    if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
        raise PermanentDeliveryError(reason)
    raise DeliveryError(reason)


async def _answer(request: Awaitable[httpx.Response]) -> httpx.Response:
    """Await an HTTP request; a transport failure or timeout is a DeliveryError."""
    try:
        return await request
    except httpx.TimeoutException as exc:
        raise DeliveryError(f"timed out ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc


class WebhookChannel:
    """POSTs the CloudEvent as JSON, signed with HMAC-SHA256 over ``<timestamp>.<body>``, to
    a checked public address, within one overall ``deadline``, without following redirects
    and without reading the answer's body (only its status counts)."""

    kind = ChannelKind.WEBHOOK

    def __init__(
        self, client: httpx.AsyncClient, destinations: Destinations, deadline: float
    ) -> None:
        self.client = client
        self.destinations = destinations
        self.deadline = deadline

    async def send(self, message: Message) -> None:
        try:
            target = await self.destinations.resolve(message.address)
        except RefusedDestination as exc:
            raise PermanentDeliveryError(f"refused destination: {exc}", public=NOT_ALLOWED) from exc
        original = httpx.URL(message.address)
        headers = {
            "Host": original.netloc.decode(),
            "Content-Type": CE_CONTENT_TYPE,
            # Receivers dedupe on this id: the same delivery always carries the same one.
            "X-Minyi-Delivery": message.delivery_id,
            "X-Minyi-Signature": signature(message.secret, int(time.time()), message.body),
        }
        request = self.client.build_request(
            "POST",
            target,
            content=message.body,
            headers=headers,
            extensions={"sni_hostname": original.host},
        )
        try:
            async with asyncio.timeout(self.deadline):
                response = await _answer(self.client.send(request, stream=True))
                await response.aclose()
        except TimeoutError as exc:
            raise DeliveryError(f"no answer within {self.deadline} s", NOT_ACCEPTED) from exc
        except DeliveryError as exc:
            raise DeliveryError(str(exc), NOT_ACCEPTED) from exc
        try:
            _check_http_answer(response)
        except PermanentDeliveryError as exc:
            raise PermanentDeliveryError(str(exc), exc.gone, GONE if exc.gone else REFUSED) from exc
        except DeliveryError as exc:
            raise DeliveryError(str(exc), NOT_ACCEPTED) from exc


class EmailChannel:
    """Sends a plain-text UTF-8 e-mail over SMTP."""

    kind = ChannelKind.EMAIL

    def __init__(self, settings: ChannelSettings) -> None:
        self.settings = settings

    def compose(self, message: Message) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.settings.smtp_sender
        mail["To"] = message.address
        mail["Subject"] = message.subject
        mail["Message-ID"] = make_msgid(domain="minyi.local")
        mail["X-Minyi-Delivery"] = message.delivery_id
        mail.set_content(message.text, charset="utf-8")
        return mail

    async def send(self, message: Message) -> None:
        s = self.settings
        try:
            await aiosmtplib.send(
                self.compose(message),
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username,
                password=s.smtp_password,
                start_tls=s.smtp_starttls,
                timeout=s.smtp_timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise PermanentDeliveryError(f"recipient refused: {exc}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            error = f"SMTP {exc.code}: {exc.message}"
            # 5xx is a final "no" from the server; 4xx asks to try again later.
            if exc.code >= 500:
                raise PermanentDeliveryError(error) from exc
            raise DeliveryError(error) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc


class SmsChannel:
    """Sends a short message through a provider-neutral HTTP gateway, as a template code and
    its parameters (短信模板 + 参数)."""

    kind = ChannelKind.SMS

    def __init__(self, client: httpx.AsyncClient, settings: ChannelSettings) -> None:
        self.client = client
        self.settings = settings

    async def send(self, message: Message) -> None:
        s = self.settings
        code = s.sms_templates.get(message.event_name) or s.sms_templates["*"]
        body = {
            "to": message.address,
            "sign": s.sms_sign,
            "template_code": code,
            "params": message.params,
            "ref": message.delivery_id,
        }
        headers = {"Authorization": f"Bearer {s.sms_gateway_token}"} if s.sms_gateway_token else {}
        response = await _answer(
            self.client.post(
                s.sms_gateway_url, json=body, headers=headers, timeout=s.sms_timeout_seconds
            )
        )
        _check_http_answer(response)


class TemplateOverrides:
    """Templates an administrator stored for (event, role); id ``<event name>:<role>``. Every
    delivery looks one up, so a read is kept for ``kept_for``: this process sees its own
    changes at once, other replicas' within ``kept_for``."""

    def __init__(
        self, collection: AsyncCollection[Document], kept_for: timedelta = timedelta(seconds=2)
    ) -> None:
        self.collection = collection
        self.kept: Kept[str, str | None] = Kept(kept_for)

    async def get(self, event_name: str, role: RecipientRole) -> str | None:
        return await self.kept.get(_template_id(event_name, role), self._read)

    async def _read(self, template_id: str) -> str | None:
        doc = await self.collection.find_one({"_id": template_id})
        return None if doc is None else str(doc["source"])

    async def put(self, event_name: str, role: RecipientRole, source: str, by: str) -> None:
        template_id = _template_id(event_name, role)
        await upsert_by_id(
            self.collection.replace_one,
            {"_id": template_id},
            {"source": source, "updated_by": by, "updated_at": utcnow()},
        )
        self.kept.forget(template_id)

    async def delete(self, event_name: str, role: RecipientRole) -> bool:
        template_id = _template_id(event_name, role)
        result = await self.collection.delete_one({"_id": template_id})
        self.kept.forget(template_id)
        return result.deleted_count > 0


def _template_id(event_name: str, role: RecipientRole) -> str:
    return f"{event_name}:{role.value}"


class QuietHoursHold:
    """Puts an event on a TTL wait queue that returns it to the work queue after
    ``delay_ms``, so deliveries held by quiet hours are looked at again — surviving restarts
    and without a timer per delivery."""

    service = "notification"

    def __init__(self, bus: EventBus, delay_ms: int) -> None:
        self.bus = bus
        self.delay_ms = delay_ms
        self._declared = False

    async def __call__(self, event: CloudEvent) -> None:
        queue = topology.wait_queue_name(self.service, self.delay_ms)
        if not self._declared:
            wait = await self.bus.broker.declare_queue(
                topology.wait_queue(self.service, self.delay_ms)
            )
            await wait.bind(topology.INTERNAL.name, routing_key=queue)
            self._declared = True
        headers = {ROUTING_KEY_HEADER: event.routing_key()}
        await self.bus.send_internal(event.model_dump_json().encode(), queue, event.id, headers)
