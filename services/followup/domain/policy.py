"""The norms a district configures (期限, 延期, 重办, 催办/督办) and the rules the domain
computes dates with."""

from typing import Literal

from pydantic import BaseModel, Field

from ..workdays import Span, WorkCalendar


class CaseError(Exception):
    """A request the case's state does not allow; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class SlaProfile(BaseModel):
    """How long a department has to sign (签收) and to reply (答复) for one urgency class."""

    sign: Span
    reply: Span


def _span(amount: int, unit: Literal["minutes", "hours", "days", "working_days"]) -> Span:
    return Span(amount=amount, unit=unit)


class Policy(BaseModel):
    """The configurable norms (defaults from the product brief)."""

    profiles: dict[str, SlaProfile] = Field(
        default_factory=lambda: {
            "emergency": SlaProfile(sign=_span(30, "minutes"), reply=_span(2, "hours")),
            "timeliness": SlaProfile(sign=_span(1, "working_days"), reply=_span(24, "hours")),
            "general": SlaProfile(sign=_span(1, "working_days"), reply=_span(7, "days")),
            "complex": SlaProfile(sign=_span(1, "working_days"), reply=_span(15, "working_days")),
        }
    )
    feedback_window: Span = Field(default_factory=lambda: _span(15, "working_days"))
    extensions_allowed: int = 1
    reopens_allowed: int = 1
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
