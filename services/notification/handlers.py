"""Notification use cases: deliver an event to everyone who wants it, exactly once per
(event, recipient, channel, address); manage subscriptions and templates."""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.events import (
    CloudEvent,
    EventData,
    MemberEnrolled,
    NotificationDelivered,
    NotificationFailed,
    new_id,
    utcnow,
)
from shared.messaging import Busy, PermanentFailure
from shared.privacy import mask_strings
from shared.store import Repository, VersionConflict, retry_on_conflict

from . import rendering
from .adapters import (
    Channel,
    DeliveryError,
    Destinations,
    PermanentDeliveryError,
    TemplateOverrides,
)
from .domain import (
    ONLY_TO,
    OWN_EVENTS_PREFIX,
    ChannelKind,
    Delivery,
    DeliveryStatus,
    Message,
    QuietHours,
    Recipient,
    RecipientRole,
    Roster,
    SendSlots,
    Subscription,
    delivery_id,
    recipient_id,
    recipients_of,
    role_of,
)

SOURCE = "/minyi/notification"
log = logging.getLogger("minyi.notification")


@dataclass
class NotificationPorts:
    recipients: Repository[Recipient]
    rosters: Repository[Roster]
    deliveries: Repository[Delivery]
    templates: TemplateOverrides
    channels: Mapping[ChannelKind, Channel]
    # Sends the event round again later, for deliveries held by quiet hours.
    hold: Callable[[CloudEvent], Awaitable[None]]
    destinations: Destinations
    claim_lease: timedelta = timedelta(seconds=20)
    clock: Callable[[], datetime] = field(default=utcnow)
    # Sends of one delivery before it counts as failed for good: bounds every event's sends.
    max_attempts: int = 5
    slots: SendSlots = field(default_factory=lambda: SendSlots(4))
    subscriptions_per_recipient: int = 20


class AlreadySubscribed(Exception):
    """The recipient already has an active subscription to this address on this channel."""


class TooManySubscriptions(Exception):
    """The recipient has as many active subscriptions as one may have."""


class Outcome:
    """What became of the deliveries of one event."""

    def __init__(self) -> None:
        self.retry: list[str] = []
        self.busy: list[str] = []
        self.permanent: list[str] = []
        self.held = False
        # Something of this event is held: this copy comes back every quiet-hours recheck.
        self.holding = False


async def deliver_event(event: CloudEvent, ports: NotificationPorts) -> None:
    """Deliver an event to every subscription that wants it, each at most once.

    Deliveries to different subscriptions run at once. Each round of an event has one outcome,
    so an event is never in two places: held by quiet hours (one copy on the hold queue, which
    also retries the failing deliveries when it comes back), else DeliveryError (the bus
    retries later with backoff) when a receiver failed for now, Busy (looked at again later,
    not counted as an attempt) when a send is under way elsewhere, PermanentFailure (parked
    with the reason) when a template is broken or a receiver refused for good. Deliveries made
    are skipped on the next round; one that failed ``max_attempts`` times is not tried again
    while the event goes round for quiet hours (a replay, or the round after them, tries it
    once more)."""
    payload = event.payload()
    if payload.name.startswith(OWN_EVENTS_PREFIX):
        return
    if isinstance(payload, MemberEnrolled):
        await enrol_member(ports.recipients, payload)
    outcome = Outcome()
    # Personal data never leaves masked-out: webhooks get the masked event too.
    body = event.model_copy(update={"data": mask_strings(event.data)}).model_dump_json().encode()
    wanted = []
    for rid in await _recipients(payload, ports):
        recipient = await ports.recipients.get(rid)
        wanted += [(rid, s) for s in (recipient.wants(payload.name) if recipient else [])]
    now = ports.clock()
    outcome.holding = any(s.quiet_hours and s.quiet_hours.ends_after(now) for _, s in wanted)
    sends = [_deliver(event, payload, rid, s, body, ports, outcome) for rid, s in wanted]
    failures = [r for r in await asyncio.gather(*sends, return_exceptions=True) if r is not None]
    if failures:
        raise failures[0]
    if outcome.held:
        await ports.hold(event)
        return
    if outcome.retry:
        raise DeliveryError("; ".join(outcome.retry + outcome.busy + outcome.permanent))
    if outcome.busy:
        raise Busy("; ".join(outcome.busy))
    if outcome.permanent:
        raise PermanentFailure("; ".join(outcome.permanent))


async def _recipients(payload: EventData, ports: NotificationPorts) -> list[str]:
    if payload.name in ONLY_TO:
        return recipients_of(payload)
    supervisors = await ports.rosters.get(roster_id(RecipientRole.SUPERVISOR))
    return recipients_of(payload) + (list(supervisors.members) if supervisors else [])


async def enrol_member(recipients: Repository[Recipient], enrolled: MemberEnrolled) -> None:
    """A member joined an office's roster: that office, and only it, manages the member."""
    rid = recipient_id(RecipientRole.MEMBER, enrolled.member_id)

    async def change() -> None:
        recipient = await recipients.get(rid)
        if recipient is None:
            fresh = Recipient(id=rid, subscriptions={}, owner=enrolled.office_id)
            if not await recipients.add(fresh, []):
                raise VersionConflict(f"recipient {rid} was created concurrently")
        elif recipient.owner is None:
            recipient.owner = enrolled.office_id
            await recipients.save(recipient, [])

    await retry_on_conflict(change)


async def may_manage(recipients: Repository[Recipient], office: str, rid: str) -> bool:
    """Whether the office manages this member (it is on the office's roster)."""
    recipient = await recipients.get(rid)
    return recipient is not None and recipient.owner == office


async def _deliver(
    event: CloudEvent,
    payload: EventData,
    rid: str,
    subscription: Subscription,
    body: bytes,
    ports: NotificationPorts,
    outcome: Outcome,
) -> None:
    did = delivery_id(event.id, rid, subscription)
    where = f"{rid} {subscription.channel.value}"
    now = ports.clock()
    quiet = subscription.quiet_hours
    if quiet is not None and quiet.ends_after(now) is not None:
        held = _new_delivery(did, event, rid, subscription, now, held=True)
        if not await ports.deliveries.add(held, []):
            existing = await ports.deliveries.get(did)
            if existing is not None and existing.status == DeliveryStatus.DELIVERED:
                await ports.deliveries.republish(did)
                return
        outcome.held = True
        return
    if not await ports.slots.take(subscription.id):
        outcome.busy.append(f"{where}: {ports.slots.per_subscription} sends under way")
        return
    try:
        delivery = await _claim(
            did, event, rid, subscription, ports.clock(), ports, outcome.holding
        )
        if delivery in (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED):
            return
        if not isinstance(delivery, Delivery):
            outcome.busy.append(f"{where}: being sent by another consumer")
            return
        channel = ports.channels[subscription.channel]
        try:
            text = await _render(event, payload, role_of(rid), ports.templates)
            await channel.send(
                Message(
                    delivery_id=did,
                    address=subscription.address,
                    subject=text.subject,
                    text=text.text,
                    body=body,
                    secret=subscription.secret,
                    event_name=payload.name,
                    params=rendering.sms_params(event, text.subject),
                )
            )
        except rendering.TemplateError as exc:
            reason = f"template error: {exc}"
            outcome.permanent.append(f"{where}: {reason}")
            await _finish(delivery, DeliveryStatus.FAILED, reason, payload, ports)
        except PermanentDeliveryError as exc:
            outcome.permanent.append(f"{where}: {exc}")
            await _finish(delivery, DeliveryStatus.FAILED, exc.public, payload, ports)
            await _count_permanent_failure(
                ports.recipients, rid, subscription.id, exc.public, exc.gone
            )
        except DeliveryError as exc:
            if delivery.attempts >= ports.max_attempts:
                outcome.permanent.append(f"{where}: failed {delivery.attempts} times, last: {exc}")
                await _finish(delivery, DeliveryStatus.FAILED, exc.public, payload, ports)
                return
            outcome.retry.append(f"{where}: {exc}")
            await _finish(delivery, DeliveryStatus.FAILING, exc.public, payload, ports)
        except Exception as exc:
            # Give up the claim, so the retry of this event does not wait for the lease to run out.
            await _finish(
                delivery, DeliveryStatus.FAILING, f"{type(exc).__name__}: {exc}", payload, ports
            )
            raise
        else:
            await _finish(delivery, DeliveryStatus.DELIVERED, None, payload, ports)
            if subscription.permanent_failures:
                await _reset_failures(ports.recipients, rid, subscription.id)
    finally:
        ports.slots.give_back(subscription.id)


def _new_delivery(
    did: str,
    event: CloudEvent,
    rid: str,
    subscription: Subscription,
    now: datetime,
    held: bool = False,
) -> Delivery:
    return Delivery(
        id=did,
        event_id=event.id,
        event_type=event.type,
        opinion_id=event.subject,
        recipient=rid,
        channel=subscription.channel,
        subscription_id=subscription.id,
        status=DeliveryStatus.HELD if held else DeliveryStatus.SENDING,
        attempts=0 if held else 1,
        claimed_at=None if held else now,
    )


async def _claim(
    did: str,
    event: CloudEvent,
    rid: str,
    subscription: Subscription,
    now: datetime,
    ports: NotificationPorts,
    holding: bool,
) -> Delivery | DeliveryStatus:
    """Mark the delivery as being sent by this consumer, so two copies of an event handled at
    once never both send. Returns the claimed delivery, or what keeps us from sending it:
    DELIVERED (done before), FAILED (failed ``max_attempts`` times, while ``holding``) or
    SENDING (another consumer has it now)."""
    # Most events are new: try the insert first, read only when it already exists.
    fresh = _new_delivery(did, event, rid, subscription, now)
    if await ports.deliveries.add(fresh, []):
        return fresh
    delivery = await ports.deliveries.get(did)
    if delivery is None:
        return DeliveryStatus.SENDING
    if delivery.status == DeliveryStatus.DELIVERED:
        # notification.delivered may not be out yet: a crash came after storing it, say.
        await ports.deliveries.republish(did)
        return DeliveryStatus.DELIVERED
    exhausted = delivery.attempts >= ports.max_attempts
    if holding and delivery.status == DeliveryStatus.FAILED and exhausted:
        return DeliveryStatus.FAILED
    if not delivery.claimable(now, ports.claim_lease):
        return DeliveryStatus.SENDING
    delivery.status = DeliveryStatus.SENDING
    delivery.attempts += 1
    delivery.claimed_at = now
    try:
        await ports.deliveries.save(delivery, [])
    except VersionConflict:
        return DeliveryStatus.SENDING
    return delivery


async def _render(
    event: CloudEvent, payload: EventData, role: RecipientRole, templates: TemplateOverrides
) -> rendering.Rendered:
    override = await templates.get(payload.name, role)
    template = (
        rendering.compile_template(override)
        if override is not None
        else rendering.builtin_template(payload.name, role)
    )
    return rendering.render(template, event, role)


async def _finish(
    delivery: Delivery,
    status: DeliveryStatus,
    error: str | None,
    payload: EventData,
    ports: NotificationPorts,
) -> None:
    delivery.status = status
    delivery.last_error = error
    delivery.delivered_at = ports.clock() if status == DeliveryStatus.DELIVERED else None
    facts = {
        "opinion_id": delivery.opinion_id,
        "office_id": str(getattr(payload, "office_id", "")),
        "recipient": delivery.recipient,
        "channel": str(delivery.channel),
        "source_event_id": delivery.event_id,
        "source_event_type": delivery.event_type,
        "delivery_id": delivery.id,
    }
    news: list[EventData] = []
    if status == DeliveryStatus.DELIVERED:
        news.append(NotificationDelivered(**facts))
    elif status == DeliveryStatus.FAILED:
        news.append(NotificationFailed(**facts, reason=error or ""))
    # We hold the claim, so nobody else writes this delivery meanwhile. A delivered one is
    # found so by the event's next round (_claim), which sends what its outbox still holds.
    delivered = status == DeliveryStatus.DELIVERED
    events = [CloudEvent.wrap(SOURCE, e) for e in news]
    await ports.deliveries.save(delivery, events, held_message=delivered)


async def _count_permanent_failure(
    recipients: Repository[Recipient], rid: str, subscription_id: str, reason: str, gone: bool
) -> None:
    async def change() -> None:
        recipient = await recipients.get(rid)
        if recipient is None or subscription_id not in recipient.subscriptions:
            return
        subscription = recipient.subscriptions[subscription_id]
        if subscription.record_permanent_failure(reason, gone):
            log.warning(
                "subscription switched off after permanent failures",
                extra={"recipient": rid, "subscription": subscription_id, "reason": reason},
            )
        await recipients.save(recipient, [])

    await retry_on_conflict(change)


async def _reset_failures(
    recipients: Repository[Recipient], rid: str, subscription_id: str
) -> None:
    async def change() -> None:
        recipient = await recipients.get(rid)
        if recipient is None or subscription_id not in recipient.subscriptions:
            return
        recipient.subscriptions[subscription_id].record_success()
        await recipients.save(recipient, [])

    await retry_on_conflict(change)


def roster_id(role: RecipientRole) -> str:
    return f"roster:{role.value}"


async def subscribe(
    ports: NotificationPorts,
    rid: str,
    channel: ChannelKind,
    address: str,
    event_names: list[str],
    quiet_hours: QuietHours | None,
    secret: str,
) -> Subscription:
    """Add a subscription; raises AlreadySubscribed for a second one to the same address and
    TooManySubscriptions beyond ``ports.subscriptions_per_recipient`` active ones."""
    limit = ports.subscriptions_per_recipient
    subscription = Subscription(
        id=new_id(),
        channel=channel,
        address=address,
        event_names=event_names,
        secret=secret if channel == ChannelKind.WEBHOOK else "",
        quiet_hours=quiet_hours,
        created_at=utcnow(),
    )

    async def change() -> None:
        recipient = await ports.recipients.get(rid)
        if recipient is None:
            recipient = Recipient(id=rid, subscriptions={subscription.id: subscription})
            if not await ports.recipients.add(recipient, []):
                raise VersionConflict(f"recipient {rid} was created concurrently")
            return
        if recipient.has_address(channel, address):
            raise AlreadySubscribed(f"{rid} already receives {channel.value} at this address")
        if sum(s.active for s in recipient.subscriptions.values()) >= limit:
            raise TooManySubscriptions(f"{rid} has {limit} active subscriptions, the most allowed")
        recipient.subscriptions[subscription.id] = subscription
        await ports.recipients.save(recipient, [])

    await retry_on_conflict(change)
    if role_of(rid) == RecipientRole.SUPERVISOR:
        await _enrol(ports.rosters, RecipientRole.SUPERVISOR, rid)
    return subscription


async def _enrol(rosters: Repository[Roster], role: RecipientRole, rid: str) -> None:
    async def change() -> None:
        roster = await rosters.get(roster_id(role))
        if roster is None:
            if not await rosters.add(Roster(id=roster_id(role), members={rid: True}), []):
                raise VersionConflict("roster created concurrently")
            return
        if rid not in roster.members:
            roster.members[rid] = True
            await rosters.save(roster, [])

    await retry_on_conflict(change)


async def set_active(
    recipients: Repository[Recipient], rid: str, subscription_id: str, active: bool
) -> Subscription | None:
    """Switch a subscription off (unsubscribe) or on again (after an automatic switch-off);
    None if the recipient has no such subscription."""

    async def change() -> Subscription | None:
        recipient = await recipients.get(rid)
        if recipient is None or subscription_id not in recipient.subscriptions:
            return None
        subscription = recipient.subscriptions[subscription_id]
        if active:
            subscription.enable()
        else:
            subscription.active = False
        await recipients.save(recipient, [])
        return subscription

    return await retry_on_conflict(change)
