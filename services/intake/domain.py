"""Intake domain: what an office registers (登记), the opinion record and how opinions are
aggregated — 附议 (a new item supports an open opinion), 并案 (staff merge) and 拆分 (split).
No I/O: methods change the opinion and return the events to publish."""

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from shared.events import (
    CO_SIGNERS_MAX,
    AssignmentReplied,
    AssignmentReturned,
    AssignmentSigned,
    AttachmentSummary,
    CaseClosed,
    Coordinates,
    EventData,
    FeedbackReceived,
    FeedbackRequested,
    KeptAs,
    Location,
    MemberEnrolled,
    OpinionAssigned,
    OpinionBriefed,
    OpinionFile,
    OpinionFiled,
    OpinionMerged,
    OpinionReceived,
    OpinionSplit,
    OpinionSupported,
    OpinionWithdrawn,
    SubmissionForm,
    SubmitterSummary,
    SupporterSummary,
    Urgency,
    new_id,
)
from shared.files import FileRef
from shared.keys import KeyRing
from shared.privacy import mask_name, mask_personal_data, mask_phone
from shared.store import Aggregate

TITLE_MAX = 100
CONTENT_MAX = 4000


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


def compared_text(title: str, content: str) -> str:
    """What duplicate detection compares of an opinion."""
    return f"{title}\n{content}"


class Submitter(BaseModel):
    kind: SubmitterKind
    name: str = Field(min_length=1, max_length=50)
    sector: str | None = Field(default=None, max_length=50, description="界别 or 选区")
    # Personal data: stored, never logged, never put in events, masked for staff.
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9][0-9-]{5,19}$")


class OpinionSubmission(BaseModel):
    """An opinion as an office registers it."""

    title: str = Field(min_length=1, max_length=TITLE_MAX)
    content: str = Field(min_length=1, max_length=CONTENT_MAX)
    channel: Channel
    submitter: Submitter
    location: Location
    coordinates: Coordinates | None = None
    urgency_hint: Urgency | None = None
    category_hint: str | None = Field(default=None, max_length=20)
    occurred_at: datetime | None = Field(default=None, description="When it happened / 发生时间")
    collected_by: str | None = Field(default=None, max_length=50, description="收集的委员/代表")
    member_id: str | None = Field(
        default=None, max_length=40, description="The 委员/代表 of the office's roster (/members)"
    )
    co_signers: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        default_factory=list,
        max_length=CO_SIGNERS_MAX,
        description="联名: other members of the office's roster; needs member_id (领衔)",
    )
    form: SubmissionForm = Field(
        default=SubmissionForm.OPINION,
        description="社情民意 (handled at once), or a member's 提案/建议 (the office decides 立案)",
    )

    @field_validator("co_signers")
    @classmethod
    def distinct_co_signers(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("co-signers must be distinct 联名委员/代表不得重复")
        if not value or "member_id" not in info.data:
            return value
        lead = info.data["member_id"]
        if lead is None:
            raise ValueError("co-signers need the lead member (member_id) 联名须有领衔委员/代表")
        if lead in value:
            raise ValueError("the lead member (member_id) does not co-sign 领衔人不能同时联名")
        return value

    @field_validator("form")
    @classmethod
    def form_has_member(cls, value: SubmissionForm, info: ValidationInfo) -> SubmissionForm:
        if value.needs_filing and info.data.get("member_id", "") is None:
            raise ValueError("a 提案/建议 is a member's: give member_id 提案/建议须注明委员/代表")
        return value

    def text(self) -> str:
        """What duplicate detection compares."""
        return compared_text(self.title, self.content)

    def fingerprint(self) -> str:
        """Identifies the request body, so a reused Idempotency-Key with other data is caught."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


class OpinionStatus(StrEnum):
    FILING = "filing"  # 待立案: a member's 提案/建议 waits for the office's decision
    LETTER = "letter"  # 不立案, kept as a letter (来信): closed here
    OPEN = "open"  # 已受理: its own case
    SUPPORTING = "supporting"  # 已附议: linked as support to another opinion
    MERGED = "merged"  # 已并案: merged by staff into another opinion
    CLOSED = "closed"  # 已办结


STATUS_LABELS = {
    OpinionStatus.FILING: "待立案",
    OpinionStatus.LETTER: "不立案, 按来信处理",
    OpinionStatus.OPEN: "已受理",
    OpinionStatus.SUPPORTING: "已附议",
    OpinionStatus.MERGED: "已并案",
    OpinionStatus.CLOSED: "已办结",
}


class OpinionError(Exception):
    """A change the opinion's state does not allow; ``status`` is the HTTP status to answer,
    ``field`` the request field at fault, if one is."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


class Supporter(BaseModel):
    """One item joined to this opinion: 附议 (found as duplicate) or 并案 (merged by staff)."""

    tracking_no: str
    office_id: str
    how: str  # 附议 | 并案
    similarity: float | None
    at: datetime
    # What the supporter said, for the departments that hold the opinion.
    title: str = ""
    content: str = ""


class Version(BaseModel):
    """A submission as it was before an edit (编辑)."""

    number: int
    submission: OpinionSubmission
    replaced_at: datetime
    replaced_by: str
    note: str


class Holder(BaseModel):
    """A department that holds (or held) the opinion: it may read it while ``active``."""

    department_name: str
    role: str  # lead | co
    since: datetime
    active: bool = True
    # Stopped by a 并案: holds it again if the opinion is split off (拆分).
    merged: bool = False


class Stage(BaseModel):
    """One step of the public progress (办理进度) shown to the submitter."""

    step: str  # 已受理, 已交办, 已签收, 已答复, 回访, 已评价, 已办结
    at: datetime
    detail: str = ""


# The steps of the progress after 已受理, in the order they happen.
PROGRESS_STEPS: dict[type[EventData], str] = {
    OpinionAssigned: "已交办",
    AssignmentSigned: "已签收",
    AssignmentReplied: "已答复",
    FeedbackRequested: "回访",
    FeedbackReceived: "已评价",
    CaseClosed: "已办结",
}


class Filing(BaseModel):
    """The office's 立案 decision on a member's 提案/建议 (an audited action: who, when)."""

    filed: bool
    reason: str
    kept_as: KeptAs | None
    by: str
    at: datetime


class Reveal(BaseModel):
    """An audited look at the submitter's contact details (查看联系方式)."""

    by: str
    role: str
    subject: str
    at: datetime


class Opinion(Aggregate):
    tracking_no: str
    office_id: str
    received_at: datetime
    submission: OpinionSubmission
    status: OpinionStatus = OpinionStatus.OPEN
    # The opinion this one supports or was merged into.
    joined_to: str | None = None
    # Maps keyed by id, so removing one never needs $pull.
    supporters: dict[str, Supporter] = Field(default_factory=dict)
    attachments: dict[str, FileRef] = Field(default_factory=dict)
    versions: list[Version] = Field(default_factory=list)
    # True once opinion.received went out: routing has (or will have) a case for it.
    routed: bool = False
    closed_at: datetime | None = None
    # Departments by code; progress steps and contact reveals by id (maps, never $pull).
    holders: dict[str, Holder] = Field(default_factory=dict)
    progress: dict[str, Stage] = Field(default_factory=dict)
    reveals: dict[str, Reveal] = Field(default_factory=dict)
    # Grows with every change the holding departments are told about (OpinionBriefed).
    revision: int = 0
    filing: Filing | None = None

    @property
    def form(self) -> SubmissionForm:
        """What it is handled as: a 提案/建议 not filed (不立案) goes on as 社情民意."""
        if self.filing is not None and not self.filing.filed:
            return SubmissionForm.OPINION
        return self.submission.form

    def register(self) -> list[EventData]:
        """A new opinion: its own case at once, or (a member's 提案/建议) waiting for 立案."""
        if self.submission.form.needs_filing:
            self.status = OpinionStatus.FILING
            return []
        return self.receive()

    def decide_filing(
        self, filed: bool, reason: str, kept_as: KeptAs | None, by: str, now: datetime
    ) -> list[EventData]:
        """立案 (routed as any opinion) or 不立案 with a reason for the member and co-signers:
        kept as 社情民意信息 (routed as an ordinary opinion) or as 来信 (closed here)."""
        if self.status != OpinionStatus.FILING:
            raise OpinionError(
                409, f"{self.tracking_no} 无待立案决定 / is not waiting for a 立案 decision."
            )
        reason = reason.strip()
        if filed and kept_as is not None:
            raise OpinionError(422, "kept_as is only for 不立案 仅不立案时填写", "kept_as")
        if not filed and not reason:
            raise OpinionError(422, "不立案须说明理由 / give the reason for the member", "reason")
        kept = None if filed else kept_as or KeptAs.OPINION
        self.filing = Filing(filed=filed, reason=reason, kept_as=kept, by=by, at=now)
        s = self.submission
        decided = OpinionFiled(
            opinion_id=self.id,
            tracking_no=self.tracking_no,
            office_id=self.office_id,
            title=s.title,
            form=s.form,
            filed=filed,
            reason=reason,
            kept_as=kept,
            decided_by=by,
            filed_at=now,
            member_id=s.member_id,
            co_signers=s.co_signers,
        )
        if kept == KeptAs.LETTER:
            self.status, self.closed_at = OpinionStatus.LETTER, now
            return [decided]
        self.status = OpinionStatus.OPEN
        return [decided, *self.receive()]

    def receive(self) -> list[EventData]:
        """Becomes its own case: routing is told to classify and assign it."""
        self.routed = True
        s = self.submission
        return [
            OpinionReceived(
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
                member_id=s.member_id,
                co_signers=s.co_signers,
                form=self.form,
            )
        ]

    def support(self, target: "Opinion", similarity: float, now: datetime) -> list[EventData]:
        """附议: this new item joins the open opinion ``target`` instead of becoming new work."""
        self.status = OpinionStatus.SUPPORTING
        self.joined_to = target.id
        return [
            OpinionSupported(
                opinion_id=target.id,
                tracking_no=target.tracking_no,
                office_id=self.office_id,
                supporter_id=self.id,
                supporter_tracking_no=self.tracking_no,
                similarity=round(similarity, 3),
                supported_at=now,
                member_id=self.submission.member_id,
                co_signers=self.submission.co_signers,
            )
        ]

    def add_supporter(
        self, supporter: "Opinion", how: str, similarity: float | None, now: datetime
    ) -> list[EventData] | None:
        """Count one more supporter and tell the holding departments; None (no change) when it
        is already counted."""
        if supporter.id in self.supporters:
            return None
        self.supporters[supporter.id] = Supporter(
            tracking_no=supporter.tracking_no,
            office_id=supporter.office_id,
            how=how,
            similarity=similarity,
            at=now,
            title=supporter.submission.title,
            content=supporter.submission.content,
        )
        return self.brief_holders(how)

    def merge_into(self, target: "Opinion", by: str, now: datetime) -> list[EventData]:
        """并案: staff merge this opinion into ``target``, which carries on as the case."""
        if target.id == self.id:
            raise OpinionError(409, "An opinion cannot be merged into itself.")
        if self.status != OpinionStatus.OPEN:
            raise OpinionError(409, f"{self.tracking_no} is {STATUS_LABELS[self.status]}.")
        if target.status != OpinionStatus.OPEN:
            raise OpinionError(
                409, f"Target {target.tracking_no} is {STATUS_LABELS[target.status]}, not open."
            )
        if self.supporters:
            raise OpinionError(409, f"{self.tracking_no} has supporters; split them off first.")
        self.status = OpinionStatus.MERGED
        self.joined_to = target.id
        # The departments hand it over to the one it was merged into (see followup).
        for holder in self.holders.values():
            holder.merged, holder.active = holder.active, False
        return [
            OpinionMerged(
                opinion_id=self.id,
                tracking_no=self.tracking_no,
                office_id=self.office_id,
                into_id=target.id,
                into_tracking_no=target.tracking_no,
                merged_by=by,
                merged_at=now,
            )
        ]

    def split(self, by: str, now: datetime) -> list[EventData]:
        """拆分: leave the opinion it joined and stand alone again: routed now if never before;
        a merged case is work again for the departments that held it (opinion.split)."""
        if self.joined_to is None or self.status == OpinionStatus.CLOSED:
            raise OpinionError(409, f"{self.tracking_no} is not joined to another opinion.")
        was_merged, joined_to = self.status == OpinionStatus.MERGED, self.joined_to
        self.status = OpinionStatus.OPEN
        self.joined_to = None
        if not self.routed:
            return self.receive()
        if not was_merged:
            return []
        for holder in self.holders.values():
            holder.active, holder.merged = holder.active or holder.merged, False
        split = OpinionSplit(
            opinion_id=self.id,
            tracking_no=self.tracking_no,
            office_id=self.office_id,
            from_id=joined_to,
            split_by=by,
            split_at=now,
        )
        return [split, *self.brief_holders("拆分")]

    def remove_supporter(self, supporter_id: str) -> list[EventData] | None:
        """A supporter was split off; the holding departments are told. None: not counted."""
        if self.supporters.pop(supporter_id, None) is None:
            return None
        return self.brief_holders("拆分")

    def edit(
        self, submission: OpinionSubmission, by: str, note: str, now: datetime
    ) -> list[EventData]:
        """编辑: replace the submission, keeping the previous one as a version; the holding
        departments get the new text. Editors see the phone masked: a submission without
        one keeps the phone on record."""
        if submission.submitter.phone is None and self.submission.submitter.phone is not None:
            submitter = submission.submitter.model_copy(
                update={"phone": self.submission.submitter.phone}
            )
            submission = submission.model_copy(update={"submitter": submitter})
        self.versions.append(
            Version(
                number=len(self.versions) + 1,
                submission=self.submission,
                replaced_at=now,
                replaced_by=by,
                note=note,
            )
        )
        self.submission = submission
        return self.brief_holders("编辑")

    def attach(self, attachment_id: str, ref: FileRef) -> list[EventData]:
        """A file joins the opinion; the holding departments are told."""
        self.attachments[attachment_id] = ref
        return self.brief_holders("附件")

    # -- the departments that hold it, and the submitter's view of its progress -----------

    def brief(self, department: str, reason: str) -> OpinionBriefed:
        """The whole opinion for one department, personal data masked."""
        s = self.submission
        opinion = OpinionFile(
            revision=self.revision,
            tracking_no=self.tracking_no,
            office_id=self.office_id,
            title=mask_personal_data(s.title),
            content=mask_personal_data(s.content),
            channel=s.channel,
            location=s.location,
            coordinates=s.coordinates,
            submitter=SubmitterSummary(
                kind=s.submitter.kind,
                name=mask_name(s.submitter.name),
                sector=s.submitter.sector,
                phone=mask_phone(s.submitter.phone),
                member_id=s.member_id,
            ),
            member_id=s.member_id,
            co_signers=s.co_signers,
            form=self.form,
            received_at=self.received_at,
            occurred_at=s.occurred_at,
            attachments=[
                AttachmentSummary(
                    id=attachment_id,
                    filename=ref.filename,
                    media_type=ref.media_type,
                    size=ref.size,
                    download_path=f"/attachments/{self.id}/{attachment_id}",
                )
                for attachment_id, ref in self.attachments.items()
            ],
            supporters=[
                SupporterSummary(
                    opinion_id=supporter_id,
                    tracking_no=sup.tracking_no,
                    office_id=sup.office_id,
                    how=sup.how,
                    at=sup.at,
                    title=mask_personal_data(sup.title),
                    content=mask_personal_data(sup.content),
                )
                for supporter_id, sup in self.supporters.items()
            ],
        )
        return OpinionBriefed(
            opinion_id=self.id, department=department, reason=reason, opinion=opinion
        )

    def brief_holders(self, reason: str) -> list[EventData]:
        """A new revision of the brief for every department still holding the opinion."""
        active = [code for code, holder in self.holders.items() if holder.active]
        if not active:
            return []
        self.revision += 1
        return [self.brief(code, reason) for code in active]

    def holds(self, department: str) -> bool:
        holder = self.holders.get(department)
        return holder is not None and holder.active

    def is_lead(self, department: str) -> bool:
        return self.holds(department) and self.holders[department].role == "lead"

    def follow(self, event_id: str, payload: EventData, at: datetime) -> list[EventData]:
        """Keep who holds the opinion and its public progress in step with routing and the
        case (each event once, ``at`` its time); a new holder gets the whole opinion (交办)."""
        if self.has_handled(event_id):
            return []
        self.mark_handled(event_id)
        events: list[EventData] = []
        detail: str | None = None
        if isinstance(payload, OpinionAssigned):
            if self.status != OpinionStatus.MERGED:
                self.holders[payload.department] = Holder(
                    department_name=payload.department_name, role=payload.role, since=at
                )
                self.revision += 1
                events.append(self.brief(payload.department, "交办"))
            detail = f"{'主办' if payload.role == 'lead' else '协办'}: {payload.department_name}"
        elif isinstance(payload, OpinionWithdrawn | AssignmentReturned):
            if (holder := self.holders.get(payload.department)) is not None:
                holder.active = False
        elif isinstance(payload, AssignmentSigned):
            detail = self._department_name(payload.department)
        elif isinstance(payload, AssignmentReplied):
            name = self._department_name(payload.department)
            detail = f"{name}: {payload.result}。{payload.text}"
        elif isinstance(payload, FeedbackRequested):
            detail = "已请提交人评价办理结果"
        elif isinstance(payload, FeedbackReceived):
            detail = str(payload.rating)
        elif isinstance(payload, CaseClosed):
            self.close(payload.closed_at)
            detail = payload.outcome
        if detail is not None:
            step = PROGRESS_STEPS[type(payload)]
            self.progress[event_id] = Stage(step=step, at=at, detail=detail)
        return events

    def stages(self) -> list[Stage]:
        """The public progress in order: 已受理 first, then each step as it happened."""
        received = Stage(step="已受理", at=self.received_at, detail=f"受理编号 {self.tracking_no}")
        order = list(PROGRESS_STEPS.values())
        # Two steps of one change can share a millisecond: the order of the steps decides.
        later = sorted(self.progress.values(), key=lambda s: (s.at, order.index(s.step)))
        return [received, *later]

    def _department_name(self, department: str) -> str:
        holder = self.holders.get(department)
        return holder.department_name if holder else department

    def reveal_contact(self, by: str, role: str, subject: str, now: datetime) -> "Submitter":
        """查看联系方式: the full contact details, recorded as an audited reveal."""
        self.reveals[new_id()] = Reveal(by=by, role=role, subject=subject, at=now)
        return self.submission.submitter

    def close(self, now: datetime) -> bool:
        """办结 (the case closed); False when already closed."""
        if self.status == OpinionStatus.CLOSED:
            return False
        self.status = OpinionStatus.CLOSED
        self.closed_at = now
        return True


class MemberKind(StrEnum):
    MEMBER = "委员"  # 政协委员
    DEPUTY = "代表"  # 人大代表


class MemberEntry(BaseModel):
    """A member (委员/代表) as an office puts them on its roster."""

    name: str = Field(min_length=1, max_length=50)
    kind: MemberKind
    sector: str | None = Field(default=None, max_length=50, description="界别 or 选区")
    # Personal data: stays in intake, never in events.
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9][0-9-]{5,19}$")
    email: str | None = Field(default=None, max_length=200, pattern=r"^[^@\s]+@[^@\s]+$")


class Member(Aggregate):
    """委员/代表 of one office's roster: submissions name them, points are counted for them."""

    office_id: str
    entry: MemberEntry
    enrolled_at: datetime

    def enrolled(self) -> list[EventData]:
        return [
            MemberEnrolled(
                member_id=self.id,
                office_id=self.office_id,
                member_name=self.entry.name,
                kind=self.entry.kind,
                sector=self.entry.sector,
            )
        ]


MAX_ATTACHMENTS = 20


def tracking_number(year: int, sequence: int) -> str:
    """Readable tracking number (受理编号), e.g. SQ-2026-000123."""
    return f"SQ-{year}-{sequence:06d}"


TRACKING_CODE_LENGTH = 12


def tracking_secret(keys: KeyRing, tracking_no: str) -> str:
    """The code printed on the receipt for the public status lookup; derived, never stored."""
    return keys.sign(tracking_no)[:TRACKING_CODE_LENGTH]


def tracking_code_valid(keys: KeyRing, tracking_no: str, code: str, now: datetime) -> bool:
    """The receipt's code, signed with the current key or (while rotating) the previous one."""
    return keys.verify(tracking_no, code, now, TRACKING_CODE_LENGTH)
