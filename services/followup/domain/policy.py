"""The norms a district configures (期限, 延期, 重办, 催办/督办, 退单, 抽查回访) and the rules the
domain computes dates with. Each district runs its own deployment (routing's directory serves
one district), so a district's norms are this service's configuration; the defaults below are
the published figures (12345 hotline and 社情民意 rules)."""

from typing import Literal

from pydantic import BaseModel, Field

from shared.events import RequestKind

from ..workdays import Span, WorkCalendar


class CaseError(Exception):
    """A request the case's state does not allow; ``status`` is the HTTP status to answer,
    ``field`` the request field at fault, if one is."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


def _span(amount: int, unit: Literal["minutes", "hours", "days", "working_days"]) -> Span:
    return Span(amount=amount, unit=unit)


class SlaProfile(BaseModel):
    """The three clocks of one urgency class, all started at 交办: 响应 (first contact with
    the submitter or a site visit), 签收 and 办结 (答复); 办结 may depend on the kind of
    request (诉求类型), ``reply`` applying to kinds not listed and to unknown ones."""

    respond: Span = Field(default_factory=lambda: _span(1, "working_days"))
    sign: Span
    reply: Span
    reply_by_kind: dict[RequestKind, Span] = Field(default_factory=dict)

    def reply_for(self, kind: RequestKind | str | None) -> Span:
        return self.reply_by_kind.get(RequestKind(kind), self.reply) if kind else self.reply


# 办结 by kind for ordinary (一般) requests, in working days: 咨询 2, 求助 10, 建议 10, 投诉 15,
# 举报 15.
KIND_REPLY_DAYS = {
    RequestKind.CONSULT: 2,
    RequestKind.HELP: 10,
    RequestKind.SUGGESTION: 10,
    RequestKind.COMPLAINT: 15,
    RequestKind.REPORT: 15,
}

# 退单 reason codes: code → what the department claims.
RETURN_CODES = {
    "not_our_duty": "不属于本单位职责",
    "wrong_area": "不属于本辖区",
    "other_level": "应由其他层级办理",
    "judicial": "已进入诉讼、仲裁或复议程序",
    "duplicate": "重复派单",
}


class Policy(BaseModel):
    """The configurable norms (defaults from the product brief)."""

    profiles: dict[str, SlaProfile] = Field(
        default_factory=lambda: {
            # 紧急: contact within 30 minutes, sign within 30 minutes, reply within 2 hours.
            "emergency": SlaProfile(
                respond=_span(30, "minutes"), sign=_span(30, "minutes"), reply=_span(2, "hours")
            ),
            # 时效 (water, power, gas, heating): contact within 2 hours, reply within 24.
            "timeliness": SlaProfile(
                respond=_span(2, "hours"), sign=_span(1, "working_days"), reply=_span(24, "hours")
            ),
            "general": SlaProfile(
                sign=_span(1, "working_days"),
                reply=_span(7, "days"),
                reply_by_kind={k: _span(n, "working_days") for k, n in KIND_REPLY_DAYS.items()},
            ),
            "complex": SlaProfile(sign=_span(1, "working_days"), reply=_span(15, "working_days")),
        }
    )
    # 退单: within this window after 交办, with a reason code from this list and evidence.
    return_window: Span = Field(default_factory=lambda: _span(2, "working_days"))
    return_codes: dict[str, str] = Field(default_factory=lambda: dict(RETURN_CODES))
    # 抽查回访: the share of closed cases platform staff call back at random.
    audit_callback_share: float = Field(default=0.1, ge=0.0, le=1.0)
    feedback_window: Span = Field(default_factory=lambda: _span(15, "working_days"))
    extensions_allowed: int = 1
    reopens_allowed: int = 1
    # 立案 member submissions: an 不满意 gets a second answer (再次答复) within a month.
    second_answer_window: Span = Field(default_factory=lambda: _span(30, "days"))
    # 催办 on the working day after the due date; 督办 level 1 and 2 after these many.
    urge_after_workdays: int = 1
    supervise_after_workdays: tuple[int, int] = (5, 10)

    def profile(self, urgency: str) -> SlaProfile:
        return self.profiles.get(urgency, self.profiles["general"])


class Rules:
    """What the domain needs to compute dates: the working-day calendar and the policy."""

    def __init__(self, calendar: WorkCalendar, policy: Policy) -> None:
        self.calendar = calendar
        self.policy = policy
