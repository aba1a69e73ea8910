"""RabbitMQ topology: one topic exchange for domain events and, per consuming service,
a quorum work queue, TTL wait queues for retry with backoff, and a parking lot.

    minyi.events (topic) --binding keys--> minyi.<svc>            (quorum work queue)
    minyi.<svc>  --reject / delivery limit--> minyi.dlx --> minyi.<svc>.parking
    consumer failure --> minyi.dlx --> minyi.<svc>.wait.<ms> --TTL--> minyi.dlx --> minyi.<svc>
    minyi.events --FOLLOWS keys--> minyi.<svc>.follow.<process>  (every replica its own copy)
"""

from typing import Any, cast

from faststream.rabbit import ExchangeType, QueueType, RabbitBroker, RabbitExchange, RabbitQueue

from shared.settings import Settings

# Both exchanges are made by the administrator (`minyi broker setup`); services only check
# that they exist (passive declare), as they may not configure them.
EVENTS = RabbitExchange("minyi.events", type=ExchangeType.TOPIC, durable=True, declare=False)
# Addresses the internal queues by their full name: dead letters, retries, replays. A topic
# exchange (bound by exact names), so topic permissions confine each service to its own queues.
INTERNAL = RabbitExchange("minyi.dlx", type=ExchangeType.TOPIC, durable=True, declare=False)

# Binding keys of each consuming service's work queue.
BINDINGS: dict[str, tuple[str, ...]] = {
    # 附议 add to a topic's heat (专题).
    "routing": ("opinion.received", "opinion.supported", "assignment.returned.*", "case.reopened"),
    "followup": (
        "opinion.assigned.*",
        # 改派: staff moved an opinion away from a department; its assignment ends.
        "opinion.withdrawn.*",
        # Its own events feed the KPI projections (统计).
        "assignment.*.*",
        "deadline.*.*",
        "case.escalated.*",
        "case.supervision_ordered.*",
        "case.audit_callback",
        "case.closed",
        "feedback.received",
        "feedback.reviewed",
        "opinion.adopted",
        "opinion.instructed",
        # 重点/优秀 marks: the members' bonus (履职积分).
        "opinion.marked",
        # 审核 steps (review KPIs) and the outcome of 信息专报, credited to its source opinions.
        "reply.*.*",
        "report.adopted",
        "report.instructed",
        # The whole opinion for the case view (交办材料), 并案, and 履职积分 of members.
        "opinion.briefed.*",
        "opinion.merged",
        "opinion.split",
        "opinion.received",
        "opinion.supported",
        # 立案 of a member's 提案/建议 (履职积分).
        "opinion.filed",
        # The members' roster (一人一档, annual 履职 minimums by kind).
        "member.enrolled",
    ),
    # Closed cases leave intake's duplicate index; its own 附议 events repair a crashed link;
    # assignments decide which departments may read an opinion; the case's steps are the
    # submitter's progress (办理进度).
    "intake": (
        "case.closed",
        "opinion.supported",
        "opinion.assigned.*",
        "opinion.withdrawn.*",
        "assignment.returned.*",
        "assignment.signed.*",
        "assignment.replied.*",
        "feedback.requested",
        "feedback.received",
    ),
    # Notification may deliver any event a subscriber asks for.
    "notification": ("#",),
}


# The events each service publishes: its RabbitMQ user may publish no other routing key.
PUBLISHES: dict[str, tuple[str, ...]] = {
    "intake": (
        "opinion.received",
        "opinion.supported",
        "opinion.merged",
        "opinion.split",
        "opinion.briefed",
        "opinion.filed",
        "member.enrolled",
    ),
    "routing": (
        "opinion.assigned",
        "opinion.triage",
        "opinion.withdrawn",
        "topic.detected",
        "topic.updated",
        "topic.heated",
    ),
    "followup": (
        "assignment.signed",
        "assignment.replied",
        "assignment.returned",
        "assignment.responded",
        "assignment.plan_due",
        "assignment.return_requested",
        "assignment.return_rejected",
        "assignment.input_given",
        "assignment.extension_requested",
        "assignment.extension_approved",
        "assignment.extension_refused",
        "deadline.warning",
        "deadline.breached",
        "deadline.carded",
        "case.escalated",
        "case.supervision_ordered",
        "case.audit_callback",
        "case.reopened",
        "case.closed",
        "feedback.requested",
        "feedback.received",
        "feedback.reviewed",
        "opinion.adopted",
        "opinion.instructed",
        "opinion.marked",
        # A merge (并案) ends the merged case's assignments; routing's 改派 sends it too.
        "opinion.withdrawn",
        # 审核 of replies, and 信息专报 (报送, 采用, 批示).
        "reply.submitted",
        "reply.approved",
        "reply.sent_back",
        "reply.review_reminded",
        "report.submitted",
        "report.adopted",
        "report.instructed",
    ),
    "notification": ("notification.delivered", "notification.failed"),
}


# Events every replica of a service must see to keep its in-memory state current (competing
# consumers on the work queue see each event once, in one replica only).
FOLLOWS: dict[str, tuple[str, ...]] = {
    # Intake's duplicate index: opinions registered by other replicas, and ones that left.
    "intake": ("opinion.received", "opinion.merged", "case.closed"),
}


def follow_queue(service: str, process: str) -> RabbitQueue:
    """One process's private copy of its FOLLOWS events: not durable, gone with the process,
    which rebuilds its state from the store when it starts."""
    return RabbitQueue(
        f"{work_queue_name(service)}.follow.{process}",
        durable=False,
        exclusive=True,
        auto_delete=True,
    )


def department_queue_name(code: str) -> str:
    """The AMQP queue a department's own system consumes (部门订阅)."""
    return f"minyi.dept.{code}"


def department_overflow_queue_name() -> str:
    """Where messages pushed out of a full department queue go (oldest first), for every
    department of the vhost; each keeps its routing key, which ends with the department."""
    return "minyi.dept-overflow"


def department_binding(code: str) -> str:
    """Every department-addressed routing key ``<aggregate>.<event>.<code>`` of one department."""
    return f"*.*.{code}"


def work_queue_name(service: str) -> str:
    return f"minyi.{service}"


def parking_queue_name(service: str) -> str:
    return f"minyi.{service}.parking"


def wait_queue_name(service: str, delay_ms: int) -> str:
    return f"minyi.{service}.wait.{delay_ms}"


def _quorum(name: str, **arguments: object) -> RabbitQueue:
    return RabbitQueue(
        name,
        queue_type=QueueType.QUORUM,
        durable=True,
        arguments=cast(Any, {"x-overflow": "reject-publish", **arguments}),
        routing_key=name,
    )


def work_queue(service: str, settings: Settings) -> RabbitQueue:
    return _quorum(
        work_queue_name(service),
        **{
            "x-dead-letter-exchange": INTERNAL.name,
            "x-dead-letter-routing-key": parking_queue_name(service),
            "x-dead-letter-strategy": "at-least-once",
            # RabbitMQ 3.10 quorum queues have no default limit: a poison message would loop.
            "x-delivery-limit": settings.delivery_limit,
        },
    )


def wait_queue(service: str, delay_ms: int) -> RabbitQueue:
    return _quorum(
        wait_queue_name(service, delay_ms),
        **{
            "x-message-ttl": delay_ms,
            "x-dead-letter-exchange": INTERNAL.name,
            "x-dead-letter-routing-key": work_queue_name(service),
            "x-dead-letter-strategy": "at-least-once",
        },
    )


def parking_queue(service: str) -> RabbitQueue:
    return _quorum(parking_queue_name(service))


async def declare(
    broker: RabbitBroker, service: str, settings: Settings, follow: RabbitQueue | None = None
) -> None:
    """Declare (idempotently) the exchanges and this service's queues and bindings, and this
    process's ``follow`` queue if it has one."""
    events = await broker.declare_exchange(EVENTS)
    internal = await broker.declare_exchange(INTERNAL)
    if follow is not None:
        own = await broker.declare_queue(follow)
        for key in FOLLOWS[service]:
            await own.bind(events, routing_key=key)
    if service not in BINDINGS:
        return
    work = await broker.declare_queue(work_queue(service, settings))
    await work.bind(internal, routing_key=work_queue_name(service))
    for key in BINDINGS[service]:
        await work.bind(events, routing_key=key)
    parking = await broker.declare_queue(parking_queue(service))
    await parking.bind(internal, routing_key=parking_queue_name(service))
    for delay in settings.retry_delays_ms:
        wait = await broker.declare_queue(wait_queue(service, delay))
        await wait.bind(internal, routing_key=wait_queue_name(service, delay))
