"""The event contract: CloudEvents 1.0 structured-JSON envelope and versioned pydantic payloads.

Routing key: ``<aggregate>.<event>[.<department>]``. Events addressed to a department end with
its code, so a department's RabbitMQ user can be confined to its own events by topic permission.
"""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from ulid import ULID

CE_CONTENT_TYPE = "application/cloudevents+json"
TYPE_PREFIX = "minyi."

# 部门编码: lowercase code used in routing keys, queue names and RabbitMQ user names.
DEPARTMENT_CODE = r"^[a-z][a-z0-9-]{1,31}$"


def new_id() -> str:
    """A sortable string id (ULID)."""
    return str(ULID())


def utcnow() -> datetime:
    return datetime.now(UTC)


class UnknownEventType(ValueError):
    """The envelope names an event type this code does not know."""


class Rating(StrEnum):
    SATISFIED = "满意"
    BASICALLY_SATISFIED = "基本满意"
    UNSATISFIED = "不满意"


class ReplyResult(StrEnum):
    RESOLVED = "已解决"
    PARTLY_RESOLVED = "部分解决"
    UNRESOLVED = "未解决"
    EXPLAINED = "解释说明"


class EventData(BaseModel):
    """Base of every payload: ``name`` is ``<aggregate>.<event>``, ``version`` goes in the type."""

    model_config = ConfigDict(frozen=True)

    name: ClassVar[str]
    version: ClassVar[int] = 1
    # True when the routing key ends with the department code.
    to_department: ClassVar[bool] = False

    opinion_id: str

    @classmethod
    def event_type(cls) -> str:
        return f"{TYPE_PREFIX}{cls.name}.v{cls.version}"

    def routing_key(self) -> str:
        return self.name


class DepartmentEvent(EventData):
    """An event addressed to one department: its routing key ends with the department code."""

    to_department = True
    department: str = Field(pattern=DEPARTMENT_CODE)

    def routing_key(self) -> str:
        return f"{self.name}.{self.department}"


class Location(BaseModel):
    district: str = Field(min_length=1, max_length=50, description="区")
    street: str | None = Field(default=None, max_length=50, description="街道/镇")
    community: str | None = Field(default=None, max_length=50, description="社区/村")


class OpinionReceived(EventData):
    """登记 — an office registered an opinion."""

    name = "opinion.received"
    tracking_no: str
    office_id: str
    title: str
    content: str
    channel: str
    submitter_kind: str
    location: Location
    category_hint: str | None = None
    urgency_hint: str | None = None
    received_at: datetime


class OpinionAssigned(DepartmentEvent):
    """交办 — routing assigned the opinion to one department (lead 主办 or co-handler 协办)."""

    name = "opinion.assigned"
    tracking_no: str
    office_id: str
    title: str
    department_name: str
    role: Literal["lead", "co"]
    category: str
    urgency: str
    explanation: str
    received_at: datetime


class OpinionTriage(EventData):
    """The router could not decide; a person must (人工分拣)."""

    name = "opinion.triage"
    tracking_no: str
    office_id: str
    reason: str


class OpinionWithdrawn(DepartmentEvent):
    """改派 — staff moved the opinion away from this department; its assignment ends."""

    name = "opinion.withdrawn"
    tracking_no: str
    office_id: str
    reason: str


class AssignmentSigned(DepartmentEvent):
    """签收 — a department signed for its assignment."""

    name = "assignment.signed"
    office_id: str
    signed_at: datetime


class AssignmentReplied(DepartmentEvent):
    """答复 — the lead department replied with a result."""

    name = "assignment.replied"
    office_id: str
    tracking_no: str
    result: ReplyResult
    text: str
    replied_at: datetime


class AssignmentReturned(DepartmentEvent):
    """退回 — a department returned a wrong assignment; routing decides again without it."""

    name = "assignment.returned"
    office_id: str
    tracking_no: str
    reason: str
    returned_at: datetime


class CaseReopened(EventData):
    """重办 — the submitter was not satisfied; the case is handled again."""

    name = "case.reopened"
    office_id: str
    tracking_no: str
    reason: str
    reopened_at: datetime


class FeedbackRequested(EventData):
    """回访 — the submitter is asked to rate the reply through a signed single-use link."""

    name = "feedback.requested"
    office_id: str
    tracking_no: str
    feedback_url: str
    expires_at: datetime


class FeedbackReceived(EventData):
    """评价 — the submitter rated the reply."""

    name = "feedback.received"
    office_id: str
    rating: Rating
    comment: str


class CaseClosed(EventData):
    """办结 — the case is closed."""

    name = "case.closed"
    office_id: str
    tracking_no: str
    outcome: str
    closed_at: datetime


EVENT_TYPES: dict[str, type[EventData]] = {
    cls.event_type(): cls
    for cls in (
        OpinionReceived,
        OpinionAssigned,
        OpinionTriage,
        OpinionWithdrawn,
        AssignmentSigned,
        AssignmentReplied,
        AssignmentReturned,
        CaseReopened,
        FeedbackRequested,
        FeedbackReceived,
        CaseClosed,
    )
}


class CloudEvent(BaseModel):
    """CloudEvents 1.0 envelope, structured JSON mode."""

    specversion: Literal["1.0"] = "1.0"
    id: str
    source: str
    type: str
    time: datetime
    subject: str = Field(description="The opinion id")
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]

    @classmethod
    def wrap(cls, source: str, data: EventData) -> "CloudEvent":
        return cls(
            id=new_id(),
            source=source,
            type=data.event_type(),
            time=utcnow(),
            subject=data.opinion_id,
            data=data.model_dump(mode="json"),
        )

    def payload(self) -> EventData:
        """The typed payload; raises UnknownEventType or pydantic.ValidationError."""
        try:
            cls = EVENT_TYPES[self.type]
        except KeyError:
            raise UnknownEventType(f"unknown event type {self.type!r}") from None
        return cls.model_validate(self.data)

    def routing_key(self) -> str:
        return self.payload().routing_key()
