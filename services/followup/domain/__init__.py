"""Follow-up domain: one case per opinion, one assignment per department (主办 lead, 协办
co-handlers), deadlines on the working-day calendar, timers, escalation, feedback and the
timeline. No I/O: methods change the case and return the events to publish.

policy: the configurable norms; records: what a case holds; timers: deadlines, 超期, 催办/督办;
assignment: a department's work (签收, 答复, 延期, 退回); review: 审核 of replies; feedback: 评价
and 重办; case: the aggregate (交办, 改派, 并案/拆分, 批示, 采用); kpis: 统计; points: 履职积分
(rules, 重点/优秀 marks, member facts); reports: 信息专报 (a report of its own, crediting its
source opinions); themes: 每月一题."""

from .assignment import DepartmentWork
from .case import Case
from .feedback import FeedbackRounds
from .kpis import ADOPTION_COUNTERS, KpiChange, kpi_change, month_of, rates
from .points import (
    Mark,
    MemberPoints,
    MemberRole,
    OutcomePoints,
    PointsRules,
    PointsRuleTable,
    counter_label,
    member_points,
)
from .policy import KIND_REPLY_DAYS, RETURN_CODES, CaseError, Policy, Rules, SlaProfile
from .records import (
    CARD_LABELS,
    CLOCK_LABELS,
    MERGED_REASON,
    NOT_ESCALATED,
    Adoption,
    Assignment,
    AssignmentStatus,
    Attachment,
    Callback,
    CaseFile,
    CaseRecord,
    CaseStatus,
    Extension,
    Feedback,
    FeedbackReview,
    Grading,
    Instruction,
    ReturnClaim,
    Review,
    SupervisionOrder,
    TimelineEntry,
    picked_for_audit,
)
from .reports import Draft, Report, ReportSource, ReportStatus
from .review import ReplyReviews, ReviewRule, ReviewRules
from .themes import LinkedOpinion, Theme, ThemeTask
from .timers import (
    CARD_TIMERS,
    ESCALATION_LABELS,
    ESCALATION_TIMERS,
    Deadlines,
    Timer,
    TimerKind,
    card_times,
)

__all__ = [
    "ADOPTION_COUNTERS",
    "CARD_LABELS",
    "CARD_TIMERS",
    "CLOCK_LABELS",
    "ESCALATION_LABELS",
    "ESCALATION_TIMERS",
    "KIND_REPLY_DAYS",
    "MERGED_REASON",
    "NOT_ESCALATED",
    "RETURN_CODES",
    "Adoption",
    "Assignment",
    "AssignmentStatus",
    "Attachment",
    "Callback",
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
    "FeedbackReview",
    "FeedbackRounds",
    "Grading",
    "Instruction",
    "KpiChange",
    "LinkedOpinion",
    "Mark",
    "MemberPoints",
    "MemberRole",
    "OutcomePoints",
    "PointsRuleTable",
    "PointsRules",
    "Policy",
    "ReplyReviews",
    "Report",
    "ReportSource",
    "ReportStatus",
    "ReturnClaim",
    "Review",
    "ReviewRule",
    "ReviewRules",
    "Rules",
    "SlaProfile",
    "SupervisionOrder",
    "Theme",
    "ThemeTask",
    "TimelineEntry",
    "Timer",
    "TimerKind",
    "card_times",
    "counter_label",
    "kpi_change",
    "member_points",
    "month_of",
    "picked_for_audit",
    "rates",
]
