"""Intake domain: what an office registers (登记) and the opinion record. No I/O."""

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from shared.events import Location, OpinionReceived
from shared.store import Aggregate


class Channel(StrEnum):
    """来源渠道."""

    RECEPTION_DAY = "接待日"
    VISIT = "走访"
    SYMPOSIUM = "座谈"
    HOTLINE = "热线"
    ONLINE = "网络"
    LETTER = "来信"
    SURVEY = "调研"


class SubmitterKind(StrEnum):
    MEMBER = "委员"  # 政协委员
    DEPUTY = "代表"  # 人大代表
    CITIZEN = "群众"
    CONTACT = "联系人"


class Urgency(StrEnum):
    EMERGENCY = "emergency"  # 紧急: reply within 2 hours
    TIMELINESS = "timeliness"  # 时效 (water, power, gas, heating): 24 hours
    GENERAL = "general"  # 一般: 7 days
    COMPLEX = "complex"  # 复杂: 15 working days


class Submitter(BaseModel):
    kind: SubmitterKind
    name: str = Field(min_length=1, max_length=50)
    sector: str | None = Field(default=None, max_length=50, description="界别 or 选区")
    # Personal data: stored, never logged, never put in events, masked for staff.
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9][0-9-]{5,19}$")


class OpinionSubmission(BaseModel):
    """An opinion as an office registers it."""

    title: str = Field(min_length=1, max_length=100)
    content: str = Field(min_length=1, max_length=4000)
    channel: Channel
    submitter: Submitter
    location: Location
    urgency_hint: Urgency | None = None
    category_hint: str | None = Field(default=None, max_length=20)


class Opinion(Aggregate):
    tracking_no: str
    office_id: str
    received_at: datetime
    submission: OpinionSubmission

    def received_event(self) -> OpinionReceived:
        s = self.submission
        return OpinionReceived(
            opinion_id=self.id,
            tracking_no=self.tracking_no,
            office_id=self.office_id,
            title=s.title,
            content=s.content,
            channel=s.channel,
            submitter_kind=s.submitter.kind,
            location=s.location,
            category_hint=s.category_hint,
            urgency_hint=s.urgency_hint,
            received_at=self.received_at,
        )


def tracking_number(year: int, sequence: int) -> str:
    """Readable tracking number (受理编号), e.g. SQ-2026-000123."""
    return f"SQ-{year}-{sequence:06d}"


def mask_phone(phone: str | None) -> str | None:
    """138****5678 — enough to recognise, not enough to call."""
    if phone is None:
        return None
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "****"
