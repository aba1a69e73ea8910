"""Follow-up domain: one case per opinion, one assignment per department (主办 lead, 协办
co-handlers), deadlines on the working-day calendar, timers, escalation, feedback and the
timeline. No I/O: methods change the case and return the events to publish.

Assignment lifecycle: assigned → signed (签收) → replied (答复), or returned (退回) by the
department after a reviewed 退单, or withdrawn (改派) when staff move the opinion elsewhere; a
lead's due date moves by an approved extension (延期) or by a reopening (重办) after a
reviewed 不满意. Three clocks run from 交办: 响应, 签收, 办结, each with 黄牌 and 红牌.
Case lifecycle: open → awaiting_feedback (回访) → closed (办结), or → reviewing (复核 of an
不满意) → open again (重办) or closed (不合理诉求)."""

from datetime import datetime
from typing import Literal

from shared.events import (
    AdoptionLevel,
    EventData,
    OpinionAdopted,
    OpinionAssigned,
    OpinionBriefed,
    OpinionInstructed,
    OpinionMerged,
    OpinionSplit,
    OpinionWithdrawn,
    ReportAdopted,
    ReportInstructed,
)

from .feedback import FeedbackRounds
from .policy import CaseError, Rules
from .records import (
    MERGED_REASON,
    Adoption,
    Assignment,
    AssignmentStatus,
    CaseStatus,
    Instruction,
    TimelineEntry,
    _local,
)
from .review import ReplyReviews
from .timers import Timer


class Case(ReplyReviews, FeedbackRounds):
    """One case per opinion: its assignments (交办, 改派), 并案/拆分, 批示 and 采用."""

    @classmethod
    def open(
        cls, assigned: OpinionAssigned, now: datetime, rules: Rules
    ) -> tuple["Case", list[Timer]]:
        """A new case from its first assignment, with the registration as first step, and the
        timers its deadlines need."""
        case = cls(
            id=assigned.opinion_id,
            tracking_no=assigned.tracking_no,
            office_id=assigned.office_id,
            title=assigned.title,
            category=assigned.category,
            urgency=assigned.urgency,
            kind=assigned.kind,
            opened_at=now,
            assignments={},
            timeline=[
                TimelineEntry(
                    at=assigned.received_at,
                    step="登记",
                    actor=assigned.office_id,
                    summary=f"受理编号 {assigned.tracking_no}",
                )
            ],
        )
        return case, case.assign(assigned, now, rules)

    def assign(self, assigned: OpinionAssigned, now: datetime, rules: Rules) -> list[Timer]:
        """交办 to one department; a department that returned it or had it withdrawn may be
        assigned again, and one still holding it takes the role it is given (改派 of roles)."""
        if self.status == CaseStatus.MERGED:
            return []  # handled in the case it was merged into
        existing = self.assignments.get(assigned.department)
        if existing is not None and not existing.has_ended():
            if existing.role != assigned.role:
                existing.role = assigned.role
                role = "主办" if assigned.role == "lead" else "协办"
                self._log(now, "改派", "routing", f"{assigned.department_name} 改为{role}")
            return []
        if self.kind_set_by is None:
            self.kind = assigned.kind or self.kind
        assignment = self._fresh(
            assigned.department,
            assigned.department_name,
            assigned.role,
            existing.generation + 1 if existing else 1,
            now,
            rules,
        )
        role = "主办" if assigned.role == "lead" else "协办"
        respond = assignment.respond_due_at
        self._log(
            now,
            "交办",
            "routing",
            f"{role} {assigned.department_name}, 类别 {assigned.category}"
            f"{', 诉求类型 ' + self.kind if self.kind else ''}, "
            f"{'响应期限 ' + _local(respond) + ', ' if respond else ''}"
            f"签收期限 {_local(assignment.sign_due_at)}, 办理期限 {_local(assignment.due_at)}",
        )
        if self.status == CaseStatus.CLOSED:
            return []
        return self._timers(assignment, rules, sign=True)

    def _fresh(
        self,
        department: str,
        name: str,
        role: Literal["lead", "co"],
        generation: int,
        now: datetime,
        rules: Rules,
    ) -> Assignment:
        """A new assignment from ``now`` (交办), with the three clocks of the case's urgency
        and kind: 响应 (the lead's), 签收 and 办结."""
        profile = rules.policy.profile(self.urgency)
        assignment = Assignment(
            department=department,
            department_name=name,
            role=role,
            assigned_at=now,
            respond_due_at=rules.calendar.due(now, profile.respond) if role == "lead" else None,
            sign_due_at=rules.calendar.due(now, profile.sign),
            due_at=rules.calendar.due(now, self.reply_span(rules)),
            generation=generation,
        )
        self.assignments[department] = assignment
        return assignment

    def split_off(self, split: OpinionSplit, now: datetime, rules: Rules) -> list[Timer]:
        """拆分 of a merged case: the departments its 并案 stopped work on it again, from now
        on, with new deadlines."""
        if self.status != CaseStatus.MERGED:
            return []
        self.status = CaseStatus.OPEN
        self.merged_into = None
        self.outcome = None
        self._log(now, "拆分", split.split_by, "从并案中拆分, 重新办理")
        timers = []
        for a in list(self.assignments.values()):
            if a.status == AssignmentStatus.WITHDRAWN and (a.withdraw_reason or "").startswith(
                MERGED_REASON
            ):
                fresh = self._fresh(
                    a.department, a.department_name, a.role, a.generation + 1, now, rules
                )
                timers += self._timers(fresh, rules, sign=True)
        return timers

    def take_brief(self, briefed: OpinionBriefed, now: datetime) -> bool:
        """The opinion as intake now has it; False when this revision is not newer."""
        brief = briefed.opinion
        if self.opinion is not None and brief.revision <= self.opinion.revision:
            return False
        edited = self.opinion is not None and (
            (self.opinion.title, self.opinion.content) != (brief.title, brief.content)
        )
        self.opinion = brief
        self.title = brief.title
        if edited:
            self._log(now, "编辑", "intake", f"意见内容已修改: {brief.title}")
        return True

    def merge_into(self, merged: OpinionMerged, now: datetime) -> list[EventData]:
        """并案: the opinion is handled in ``into``; every department still working on it
        stops (no department handles the same matter twice) and is told why."""
        if self.status == CaseStatus.MERGED:
            return []
        reason = f"{MERGED_REASON} {merged.into_tracking_no}, 在该件中办理"
        ended = [a for a in self.assignments.values() if not a.has_ended()]
        for assignment in ended:
            assignment.status = AssignmentStatus.WITHDRAWN
            assignment.withdrawn_at = now
            assignment.withdraw_reason = reason
            assignment.overdue = False
        self.status = CaseStatus.MERGED
        self.merged_into = merged.into_id
        self.outcome = "并案"
        self._refresh()
        self._log(now, "并案", merged.merged_by, reason)
        return [
            OpinionWithdrawn(
                opinion_id=self.id,
                department=a.department,
                tracking_no=self.tracking_no,
                office_id=self.office_id,
                reason=reason,
            )
            for a in ended
        ]

    def instruct(self, leader: str, text: str, now: datetime) -> list[EventData]:
        """批示 recorded on the case and announced to the member and office."""
        self.instructions.append(Instruction(leader=leader, text=text, at=now))
        self._log(now, "批示", leader, text[:100])
        return [
            OpinionInstructed(
                opinion_id=self.id,
                office_id=self.office_id,
                tracking_no=self.tracking_no,
                leader=leader,
                text=text,
                instructed_at=now,
                member_id=self.member_id,
                co_signers=self.co_signers,
            )
        ]

    def adopt(self, level: AdoptionLevel, by: str, note: str, now: datetime) -> list[EventData]:
        """采用 at a level, once per level."""
        if any(a.level == level for a in self.adoptions):
            raise CaseError(409, f"Already recorded as adopted at level {level}.")
        self.adoptions.append(Adoption(level=level, adopted_by=by, note=note, at=now))
        self._log(now, "采用", by, f"{level}级采用{': ' + note if note else ''}")
        return [
            OpinionAdopted(
                opinion_id=self.id,
                office_id=self.office_id,
                tracking_no=self.tracking_no,
                level=level,
                adopted_by=by,
                note=note,
                adopted_at=now,
                member_id=self.member_id,
                co_signers=self.co_signers,
            )
        ]

    def credit_report(
        self, outcome: ReportAdopted | ReportInstructed, now: datetime
    ) -> list[EventData]:
        """The 采用 or 批示 of an information report (信息专报) this opinion is a source of:
        recorded as the opinion's own (so its member earns the points), naming the report; an
        opinion already adopted at that level keeps the one adoption (the step is noted)."""
        report = f"信息专报《{outcome.title}》({outcome.number})"
        if isinstance(outcome, ReportInstructed):
            return self.instruct(outcome.leader, f"{outcome.text}（{report}）", now)
        if any(a.level == outcome.level for a in self.adoptions):
            self._log(now, "采用", outcome.adopted_by, f"{report} {outcome.level}级采用 (已记采用)")
            return []
        note = f"{report}{': ' + outcome.note if outcome.note else ''}"
        return self.adopt(outcome.level, outcome.adopted_by, note, now)
