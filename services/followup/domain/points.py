"""履职积分 as rules: points per outcome and role (领衔 lead author, 联名 co-signer), the annual
minimum per member kind, the 重点/优秀 marks that earn a bonus, and the member facts the
events make (one per member and role). The facts hold counters only; points are the counters
weighed by the rules in force when a record is read, so a changed rule re-scores the year."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events import (
    EventData,
    MarkKind,
    OpinionAdopted,
    OpinionFiled,
    OpinionInstructed,
    OpinionMarked,
    OpinionReceived,
    OpinionSupported,
)
from shared.store import Aggregate

from .kpis import ADOPTION_COUNTERS, month_of

MemberRole = Literal["lead", "co_signer"]
# A co-signer's counters carry this prefix; the lead's are the outcome's own name (as before).
CO_SIGNED = "co_"

# Points for one outcome: a whole number, none negative, none absurd.
Points = Annotated[int, Field(ge=0, le=1000, strict=True)]
Minimum = Annotated[int, Field(ge=0, le=100000, strict=True)]


class OutcomePoints(BaseModel):
    """Points per outcome for one role. Unknown outcomes are refused (422 naming them)."""

    model_config = ConfigDict(extra="forbid")

    submitted: Points = Field(description="提交 (登记 or 附议)")
    filed: Points = Field(description="立案")
    adopted_district: Points = Field(description="采用 · 区级")
    adopted_city: Points = Field(description="采用 · 市级")
    adopted_province: Points = Field(description="采用 · 省级")
    adopted_national: Points = Field(description="采用 · 全国")
    instructed: Points = Field(description="批示")
    key: Points = Field(description="重点 bonus")
    excellent: Points = Field(description="优秀 bonus")


class AnnualMinimum(BaseModel):
    """年度最低积分 per member kind."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    member: Minimum = Field(default=10, alias="委员")
    deputy: Minimum = Field(default=10, alias="代表")

    def of(self, kind: str | None) -> int | None:
        """The minimum of a kind (None: a kind the rules do not know)."""
        return {"委员": self.member, "代表": self.deputy}.get(kind or "")


# The weights before the rules: submitted 1, 立案 3, 批示 5, 采用 3/5/8/10; a co-signer earns
# less (submitted and 立案 1 as before).
DEFAULT_LEAD = OutcomePoints(
    submitted=1,
    filed=3,
    adopted_district=3,
    adopted_city=5,
    adopted_province=8,
    adopted_national=10,
    instructed=5,
    key=3,
    excellent=5,
)
DEFAULT_CO_SIGNER = OutcomePoints(
    submitted=1,
    filed=1,
    adopted_district=1,
    adopted_city=2,
    adopted_province=3,
    adopted_national=4,
    instructed=2,
    key=1,
    excellent=2,
)


class PointsRuleTable(BaseModel):
    """What a supervisor sets: points per role and outcome, minimums per kind."""

    model_config = ConfigDict(extra="forbid")

    lead: OutcomePoints = Field(
        default_factory=DEFAULT_LEAD.model_copy, description="领衔 (提交人)"
    )
    co_signer: OutcomePoints = Field(
        default_factory=DEFAULT_CO_SIGNER.model_copy, description="联名"
    )
    annual_minimum: AnnualMinimum = Field(default_factory=AnnualMinimum)


class PointsRules(PointsRuleTable):
    """The rules in force: a version (0: the defaults, never stored), who set them and when."""

    version: int = 0
    updated_by: str | None = None
    updated_at: datetime | None = None

    def points(self, counters: dict[str, int]) -> int:
        """履职积分 of counters: the lead's under the outcome's name, a co-signer's prefixed."""
        rows: tuple[tuple[MemberRole, OutcomePoints], ...] = (
            ("lead", self.lead),
            ("co_signer", self.co_signer),
        )
        return sum(
            weight * counters.get(counter(outcome, role), 0)
            for role, row in rows
            for outcome, weight in row.model_dump().items()
        )


def counter(outcome: str, role: MemberRole) -> str:
    """The counter a member's fact holds for an outcome in a role."""
    return outcome if role == "lead" else CO_SIGNED + outcome


OUTCOME_LABELS = {
    "submitted": "提交",
    "filed": "立案",
    "adopted_district": "区级采用",
    "adopted_city": "市级采用",
    "adopted_province": "省级采用",
    "adopted_national": "全国采用",
    "instructed": "批示",
    "key": "重点加分",
    "excellent": "优秀加分",
}


def counter_label(name: str) -> str:
    """A member counter in Chinese, e.g. ``co_filed`` → 立案(联名)."""
    outcome = name.removeprefix(CO_SIGNED)
    return f"{OUTCOME_LABELS.get(outcome, outcome)}({'领衔' if outcome == name else '联名'})"


class Mark(Aggregate):
    """重点 (a key opinion) or 优秀 (an excellent submission) on one opinion, ``_id``
    ``<opinion>:<mark>``. ``generation`` counts every change, so each mark and unmark is its
    own member fact (+bonus, −bonus), counted once however often it is delivered."""

    opinion_id: str
    mark: MarkKind
    office_id: str
    tracking_no: str
    member_id: str
    co_signers: list[str] = Field(default_factory=list)
    marked: bool = False
    generation: int = 0
    marked_at: datetime | None = None
    marked_by: str | None = None
    reason: str = ""

    @staticmethod
    def key(opinion_id: str, mark: MarkKind) -> str:
        return f"{opinion_id}:{mark}"

    def set(self, marked: bool, by: str, reason: str, now: datetime) -> OpinionMarked | None:
        """Mark or take the mark back; None when it already is so (idempotent)."""
        if marked == self.marked:
            return None
        if marked:
            self.marked_at = now
        assert self.marked_at is not None  # only a mark given can be taken back
        self.marked, self.marked_by, self.reason = marked, by, reason
        self.generation += 1
        return OpinionMarked(
            opinion_id=self.opinion_id,
            office_id=self.office_id,
            tracking_no=self.tracking_no,
            mark=self.mark,
            marked=marked,
            generation=self.generation,
            by=by,
            reason=reason,
            marked_at=self.marked_at,
            changed_at=now,
            member_id=self.member_id,
            co_signers=self.co_signers,
        )


class MemberPoints(BaseModel):
    """What one event adds to one member's counters, once per ``key``, in the month of the
    business time the event carries."""

    key: str
    month: str
    member: str
    office: str
    counters: dict[str, int]


def _members(payload: EventData) -> list[tuple[str, MemberRole]]:
    """The lead author and each co-signer the event names."""
    lead = getattr(payload, "member_id", None)
    found: list[tuple[str, MemberRole]] = [(lead, "lead")] if lead else []
    return found + [(m, "co_signer") for m in getattr(payload, "co_signers", ()) if m != lead]


def member_points(event_id: str, payload: EventData) -> list[MemberPoints]:
    """Submitted (登记 or 附议), 立案, 采用 by level, 批示 and 重点/优秀 marks of an opinion:
    one fact per member it names, the lead's (领衔) ``<counter>`` under the event's key (the key
    it always had), each co-signer's (联名) ``co_<counter>`` under ``<key>-<member>``."""
    if isinstance(payload, OpinionReceived):
        key, at, outcome = f"submitted-{payload.opinion_id}", payload.received_at, "submitted"
    elif isinstance(payload, OpinionSupported):
        key, at, outcome = f"submitted-{payload.supporter_id}", payload.supported_at, "submitted"
    elif isinstance(payload, OpinionFiled) and payload.filed:
        key, at, outcome = f"filed-{payload.opinion_id}", payload.filed_at, "filed"
    elif isinstance(payload, OpinionAdopted):
        key, at, outcome = event_id, payload.adopted_at, ADOPTION_COUNTERS[payload.level]
    elif isinstance(payload, OpinionInstructed):
        key, at, outcome = event_id, payload.instructed_at, "instructed"
    elif isinstance(payload, OpinionMarked):
        # An unmark takes the bonus back in the month the mark was given.
        key = f"{payload.mark}-{payload.opinion_id}-{payload.generation}"
        at, outcome = payload.marked_at, str(payload.mark)
    else:
        return []
    n = -1 if isinstance(payload, OpinionMarked) and not payload.marked else 1
    office = str(getattr(payload, "office_id", ""))
    return [
        MemberPoints(
            key=key if role == "lead" else f"{key}-{member}",
            month=month_of(at),
            member=member,
            office=office,
            counters={counter(outcome, role): n},
        )
        for member, role in _members(payload)
    ]
