"""Intake domain: what an office registers (登记), the opinion record and how opinions are
aggregated — 附议 (a new item supports an open opinion), 并案 (staff merge) and 拆分 (split).
No I/O: methods change the opinion and return the events to publish."""

import hashlib
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from shared.events import EventData, Location, OpinionMerged, OpinionReceived, OpinionSupported
from shared.keys import KeyRing
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


class Urgency(StrEnum):
    EMERGENCY = "emergency"  # 紧急: reply within 2 hours
    TIMELINESS = "timeliness"  # 时效 (water, power, gas, heating): 24 hours
    GENERAL = "general"  # 一般: 7 days
    COMPLEX = "complex"  # 复杂: 15 working days


def compared_text(title: str, content: str) -> str:
    """What duplicate detection compares of an opinion."""
    return f"{title}\n{content}"


class Submitter(BaseModel):
    kind: SubmitterKind
    name: str = Field(min_length=1, max_length=50)
    sector: str | None = Field(default=None, max_length=50, description="界别 or 选区")
    # Personal data: stored, never logged, never put in events, masked for staff.
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9][0-9-]{5,19}$")


class Coordinates(BaseModel):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


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

    def text(self) -> str:
        """What duplicate detection compares."""
        return compared_text(self.title, self.content)

    def fingerprint(self) -> str:
        """Identifies the request body, so a reused Idempotency-Key with other data is caught."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


class OpinionStatus(StrEnum):
    OPEN = "open"  # 已受理: its own case
    SUPPORTING = "supporting"  # 已附议: linked as support to another opinion
    MERGED = "merged"  # 已并案: merged by staff into another opinion
    CLOSED = "closed"  # 已办结


STATUS_LABELS = {
    OpinionStatus.OPEN: "已受理",
    OpinionStatus.SUPPORTING: "已附议",
    OpinionStatus.MERGED: "已并案",
    OpinionStatus.CLOSED: "已办结",
}


class OpinionError(Exception):
    """A change the opinion's state does not allow; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Supporter(BaseModel):
    """One item joined to this opinion: 附议 (found as duplicate) or 并案 (merged by staff)."""

    tracking_no: str
    office_id: str
    how: str  # 附议 | 并案
    similarity: float | None
    at: datetime


class Version(BaseModel):
    """A submission as it was before an edit (编辑)."""

    number: int
    submission: OpinionSubmission
    replaced_at: datetime
    replaced_by: str
    note: str


class AttachmentRef(BaseModel):
    filename: str
    media_type: str
    size: int
    uploaded_at: datetime


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
    attachments: dict[str, AttachmentRef] = Field(default_factory=dict)
    versions: list[Version] = Field(default_factory=list)
    # True once opinion.received went out: routing has (or will have) a case for it.
    routed: bool = False
    closed_at: datetime | None = None

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
            )
        ]

    def add_supporter(
        self,
        supporter_id: str,
        tracking_no: str,
        office_id: str,
        how: str,
        similarity: float | None,
        now: datetime,
    ) -> bool:
        """Count one more supporter; False (no change) when it is already counted."""
        if supporter_id in self.supporters:
            return False
        self.supporters[supporter_id] = Supporter(
            tracking_no=tracking_no, office_id=office_id, how=how, similarity=similarity, at=now
        )
        return True

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

    def split(self) -> list[EventData]:
        """拆分: leave the opinion it joined and stand alone again; routed now if never before."""
        if self.joined_to is None or self.status == OpinionStatus.CLOSED:
            raise OpinionError(409, f"{self.tracking_no} is not joined to another opinion.")
        self.status = OpinionStatus.OPEN
        self.joined_to = None
        return [] if self.routed else self.receive()

    def edit(self, submission: OpinionSubmission, by: str, note: str, now: datetime) -> None:
        """编辑: replace the submission, keeping the previous one as a version."""
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

    def close(self, now: datetime) -> bool:
        """办结 (the case closed); False when already closed."""
        if self.status == OpinionStatus.CLOSED:
            return False
        self.status = OpinionStatus.CLOSED
        self.closed_at = now
        return True


# Attachments: images, PDF and Office files, recognised by their first bytes, not their name.
MEDIA_TYPES = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF8": "image/gif",
    b"%PDF-": "application/pdf",
    b"PK\x03\x04": "application/zip",  # docx, xlsx, pptx
    b"\xd0\xcf\x11\xe0": "application/x-ole-storage",  # doc, xls, ppt
}
OFFICE_SUFFIXES = {
    "application/zip": (".docx", ".xlsx", ".pptx"),
    "application/x-ole-storage": (".doc", ".xls", ".ppt"),
}
MAX_ATTACHMENTS = 20


def media_type_of(filename: str, data: bytes) -> str:
    """The file's type from its content; OpinionError if it is not an accepted kind."""
    for magic, media_type in MEDIA_TYPES.items():
        if data.startswith(magic):
            suffixes = OFFICE_SUFFIXES.get(media_type)
            if suffixes is None or filename.lower().endswith(suffixes):
                return media_type
    raise OpinionError(
        415,
        "Only images (PNG/JPEG/GIF), PDF and Office files can be attached "
        "仅支持图片、PDF 和 Office 文件.",
    )


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


def mask_phone(phone: str | None) -> str | None:
    """138****5678 — enough to recognise, not enough to call."""
    if phone is None:
        return None
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "****"


def mask_name(name: str) -> str:
    """王** — the family name only."""
    return name[:1] + "*" * max(len(name) - 1, 1)
