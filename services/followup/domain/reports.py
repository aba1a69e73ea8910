"""信息专报 — information reports: an editor compiles opinions (or a topic's) into a report,
revises it in numbered drafts, a supervisor signs a draft off (签发), it is sent up (报送) to a
level, and its outcome is recorded: 采用 by level and 批示. The outcome is credited to every
source opinion (their timeline, their members' 履职积分, the KPIs) through the events.

Report lifecycle: draft ──签发──▶ signed_off ──报送──▶ submitted (again to another level);
a new draft after 签发 voids it (draft again); a submitted report is not edited any more."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from shared.events import (
    AdoptionLevel,
    EventData,
    ReportAdopted,
    ReportInstructed,
    ReportSubmitted,
)
from shared.store import Aggregate

from .policy import CaseError
from .records import CaseRecord, TimelineEntry


class ReportStatus(StrEnum):
    DRAFT = "draft"  # 编辑中
    SIGNED_OFF = "signed_off"  # 已签发
    SUBMITTED = "submitted"  # 已报送


class ReportSource(BaseModel):
    """A source opinion as the report names it (来源意见), with the member who raised it."""

    opinion_id: str
    tracking_no: str
    title: str
    office_id: str
    member_id: str | None = None

    @classmethod
    def of(cls, case: CaseRecord) -> "ReportSource":
        return cls(
            opinion_id=case.id,
            tracking_no=case.tracking_no,
            title=case.title,
            office_id=case.office_id,
            member_id=case.member_id,
        )


class Draft(BaseModel):
    """One version of the report's text (稿), with where it goes (报送/抄送)."""

    version: int
    title: str
    text: str
    send_to: list[str]
    copy_to: list[str]
    by: str
    at: datetime


class SignOff(BaseModel):
    version: int
    by: str
    at: datetime


class Submission(BaseModel):
    level: AdoptionLevel
    sent_to: list[str]
    by: str
    at: datetime


class ReportAdoption(BaseModel):
    level: AdoptionLevel
    adopted_by: str
    note: str
    at: datetime


class ReportInstruction(BaseModel):
    leader: str
    text: str
    at: datetime


class Report(Aggregate):
    number: str  # 编号, e.g. 2026年第3期
    unit: str  # 编发单位 — the submitting unit
    topic_id: str | None = None  # the 专题 it was compiled from, if any (a reference only)
    sources: list[ReportSource]
    status: ReportStatus = ReportStatus.DRAFT
    drafts: list[Draft]
    signed_off: SignOff | None = None
    submissions: list[Submission] = Field(default_factory=list)
    adoptions: list[ReportAdoption] = Field(default_factory=list)
    instructions: list[ReportInstruction] = Field(default_factory=list)
    timeline: list[TimelineEntry]
    created_by: str
    created_at: datetime

    @classmethod
    def compile(
        cls,
        report_id: str,
        number: str,
        unit: str,
        topic_id: str | None,
        sources: list[ReportSource],
        draft: Draft,
    ) -> "Report":
        """编辑 — a new report from its sources, with its first draft."""
        report = cls(
            id=report_id,
            number=number,
            unit=unit,
            topic_id=topic_id,
            sources=sources,
            drafts=[draft],
            timeline=[],
            created_by=draft.by,
            created_at=draft.at,
        )
        numbers = "、".join(s.tracking_no for s in sources)
        report._log(draft.at, "编辑", draft.by, f"第1稿《{draft.title}》, 来源 {numbers}")
        return report

    @property
    def draft(self) -> Draft:
        """The newest draft."""
        return self.drafts[-1]

    def draft_of(self, version: int | None) -> Draft:
        """Draft ``version`` (None: the newest)."""
        if version is None:
            return self.draft
        for draft in self.drafts:
            if draft.version == version:
                return draft
        raise CaseError(
            404,
            f"无第{version}稿（共{self.draft.version}稿） / No draft {version} of {self.id}.",
        )

    def revise(
        self, title: str, text: str, send_to: list[str], copy_to: list[str], by: str, now: datetime
    ) -> None:
        """A new draft; one that was signed off must be signed off again."""
        if self.status == ReportStatus.SUBMITTED:
            raise CaseError(
                409,
                "专报已报送，不能再修改 / The report is submitted; it is not edited any more.",
            )
        version = self.draft.version + 1
        self.drafts.append(
            Draft(
                version=version,
                title=title,
                text=text,
                send_to=send_to,
                copy_to=copy_to,
                by=by,
                at=now,
            )
        )
        voided = self.status == ReportStatus.SIGNED_OFF
        self.status = ReportStatus.DRAFT
        self.signed_off = None
        self._log(now, "修改", by, f"第{version}稿《{title}》{', 原签发作废' if voided else ''}")

    def sign_off(self, version: int, by: str, now: datetime) -> None:
        """签发 of the newest draft (naming its version, so nobody signs what they did not read)."""
        if self.status != ReportStatus.DRAFT:
            raise CaseError(
                409,
                f"只有编辑中的稿件可以签发 / The report is {self.status}; a draft is signed off.",
            )
        if version != self.draft.version:
            raise CaseError(
                409,
                f"第{version}稿不是最新稿，请签发第{self.draft.version}稿 / Draft {version} is not "
                f"the newest; sign off draft {self.draft.version}.",
            )
        self.status = ReportStatus.SIGNED_OFF
        self.signed_off = SignOff(version=version, by=by, at=now)
        self._log(now, "签发", by, f"第{version}稿签发")

    def submit(self, level: AdoptionLevel, by: str, now: datetime) -> list[EventData]:
        """报送 to a level, to the units the signed-off draft names; once per level."""
        if self.status == ReportStatus.DRAFT:
            raise CaseError(
                409, "专报须先签发再报送 / The report must be signed off before it is submitted."
            )
        if any(s.level == level for s in self.submissions):
            raise CaseError(409, f"已报送{level}级 / Already submitted at level {level}.")
        sent_to = self.draft.send_to
        self.status = ReportStatus.SUBMITTED
        self.submissions.append(Submission(level=level, sent_to=sent_to, by=by, at=now))
        self._log(now, "报送", by, f"报送{level}级: {'、'.join(sent_to)}")
        return [
            ReportSubmitted(
                **self._about(), level=level, sent_to=sent_to, submitted_by=by, submitted_at=now
            )
        ]

    def adopt(self, level: AdoptionLevel, by: str, note: str, now: datetime) -> list[EventData]:
        """采用 at a level, once per level; credited to every source opinion."""
        self._submitted()
        if any(a.level == level for a in self.adoptions):
            raise CaseError(
                409, f"已记录{level}级采用 / Already recorded as adopted at level {level}."
            )
        self.adoptions.append(ReportAdoption(level=level, adopted_by=by, note=note, at=now))
        self._log(now, "采用", by, f"{level}级采用{': ' + note if note else ''}")
        return [
            ReportAdopted(**self._about(), level=level, adopted_by=by, note=note, adopted_at=now)
        ]

    def instruct(self, leader: str, text: str, now: datetime) -> list[EventData]:
        """批示 on the report; every source opinion gets it."""
        self._submitted()
        self.instructions.append(ReportInstruction(leader=leader, text=text, at=now))
        self._log(now, "批示", leader, text[:100])
        return [ReportInstructed(**self._about(), leader=leader, text=text, instructed_at=now)]

    def _submitted(self) -> None:
        if self.status != ReportStatus.SUBMITTED:
            raise CaseError(409, "专报尚未报送 / The report has not been submitted yet.")

    def _about(self) -> dict[str, Any]:
        return {
            "report_id": self.id,
            "number": self.number,
            "title": self.draft.title,
            "opinion_ids": [s.opinion_id for s in self.sources],
        }

    def _log(self, at: datetime, step: str, actor: str, summary: str) -> None:
        self.timeline.append(TimelineEntry(at=at, step=step, actor=actor, summary=summary))
