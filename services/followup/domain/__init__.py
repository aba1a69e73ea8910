"""Follow-up domain: one case per opinion, one assignment per department (主办 lead, 协办
co-handlers), deadlines on the working-day calendar, timers, escalation, feedback and the
timeline. No I/O: methods change the case and return the events to publish.

policy: the configurable norms; records: what a case holds; timers: deadlines, 超期, 催办/督办;
assignment: a department's work (签收, 答复, 延期, 退回); review: 审核 of replies; feedback: 评价
and 重办; case: the aggregate (交办, 改派, 并案/拆分, 批示, 采用); kpis: 统计 and 履职积分;
reports: 信息专报 (a report of its own, crediting its source opinions)."""

from .assignment import DepartmentWork
from .case import Case
from .feedback import FeedbackRounds
from .kpis import (
    ADOPTION_COUNTERS,
    KpiChange,
    MemberPoints,
    PointWeights,
    kpi_change,
    member_points,
    month_of,
    rates,
)
from .policy import CaseError, Policy, Rules, SlaProfile
from .records import (
    MERGED_REASON,
    NOT_ESCALATED,
    Adoption,
    Assignment,
    AssignmentStatus,
    Attachment,
    CaseFile,
    CaseRecord,
    CaseStatus,
    Extension,
    Feedback,
    Instruction,
    Review,
    TimelineEntry,
)
from .reports import Draft, Report, ReportSource, ReportStatus
from .review import ReplyReviews, ReviewRule, ReviewRules
from .timers import ESCALATION_LABELS, ESCALATION_TIMERS, Deadlines, Timer, TimerKind

__all__ = [
    "ADOPTION_COUNTERS",
    "ESCALATION_LABELS",
    "ESCALATION_TIMERS",
    "MERGED_REASON",
    "NOT_ESCALATED",
    "Adoption",
    "Assignment",
    "AssignmentStatus",
    "Attachment",
    "Case",
    "CaseError",
    "CaseFile",
    "CaseRecord",
    "CaseStatus",
    "Deadlines",
    "DepartmentWork",
    "Draft",
    "Extension",
    "Feedback",
    "FeedbackRounds",
    "Instruction",
    "KpiChange",
    "MemberPoints",
    "PointWeights",
    "Policy",
    "ReplyReviews",
    "Report",
    "ReportSource",
    "ReportStatus",
    "Review",
    "ReviewRule",
    "ReviewRules",
    "Rules",
    "SlaProfile",
    "TimelineEntry",
    "Timer",
    "TimerKind",
    "kpi_change",
    "member_points",
    "month_of",
    "rates",
]
