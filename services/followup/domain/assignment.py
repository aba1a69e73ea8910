"""A department's work on its assignment."""

from datetime import date, datetime
from typing import Literal

from shared.clock import closing_day
from shared.events import (
    GRADE_LABELS,
    AssignmentExtensionApproved,
    AssignmentExtensionRefused,
    AssignmentExtensionRequested,
    AssignmentInputGiven,
    AssignmentReplied,
    AssignmentResponded,
    AssignmentReturned,
    AssignmentSigned,
    EventData,
    FeedbackRequested,
    PlanDue,
    ReplyGrade,
    ReplyResult,
    ReturnRejected,
    ReturnRequested,
)
from shared.files import FileRef

from .policy import CaseError, Rules
from .records import (
    NOT_ESCALATED,
    Assignment,
    AssignmentStatus,
    Attachment,
    CaseFile,
    CaseStatus,
    Extension,
    Grading,
    ReturnClaim,
    _local,
)
from .timers import Deadlines, Timer, TimerKind

MAX_CASE_FILES = 20


class DepartmentWork(Deadlines):
    """响应, 签收, 答复, 协办意见, 延期, 退单 (with its review) and 改派 of one department's
    assignment."""

    def sign(self, department: str, now: datetime, by: str | None = None) -> list[EventData]:
        """签收; signing again changes nothing. ``by``: the person (and unit) on the timeline,
        the department itself when a machine acts."""
        assignment = self.assignment_of(department)
        if assignment.status == AssignmentStatus.RETURNED:
            raise CaseError(409, "This assignment was returned (退回); it cannot be signed.")
        if assignment.status == AssignmentStatus.WITHDRAWN:
            raise CaseError(409, "This assignment was withdrawn (已改派); it cannot be signed.")
        if assignment.status != AssignmentStatus.ASSIGNED:
            return []
        assignment.status = AssignmentStatus.SIGNED
        assignment.signed_at = now
        on_time = now <= assignment.sign_due_at
        self._log(
            now,
            "签收",
            by or department,
            f"{assignment.department_name} 已签收{'' if on_time else ' (超期签收)'}",
        )
        return [
            AssignmentSigned(
                opinion_id=self.id,
                office_id=self.office_id,
                department=department,
                signed_at=now,
                sign_due_at=assignment.sign_due_at,
                on_time=on_time,
            )
        ]

    def upload(self, department: str, file_id: str, ref: FileRef) -> None:
        """A file the lead department will attach to its reply (上传答复附件)."""
        self._working(department, "lead")
        if len(self.files) >= MAX_CASE_FILES:
            raise CaseError(409, f"At most {MAX_CASE_FILES} files per case 附件数量已达上限.")
        self.files[file_id] = CaseFile(**ref.model_dump(), department=department)

    def _working(self, department: str, role: Literal["lead", "co"] | None = None) -> Assignment:
        """The department's assignment, which must be signed and still owe work."""
        assignment = self.assignment_of(department)
        if self.status in (CaseStatus.CLOSED, CaseStatus.MERGED):
            raise CaseError(409, f"The case is {self.status} (已办结/已并案).")
        if role == "lead" and assignment.role != "lead":
            raise CaseError(409, "Only the lead department (主办) replies to the submitter.")
        if role == "co" and assignment.role != "co":
            raise CaseError(409, "Only a co-handler (协办) gives input; the lead replies.")
        if assignment.status == AssignmentStatus.RETURNED:
            raise CaseError(409, "This assignment was returned (退回).")
        if assignment.status == AssignmentStatus.WITHDRAWN:
            raise CaseError(409, "This assignment was withdrawn (已改派) to another department.")
        if assignment.status == AssignmentStatus.ASSIGNED:
            raise CaseError(409, "Sign for the assignment (签收) first.")
        if assignment.status == AssignmentStatus.REPLIED:
            raise CaseError(409, "This assignment has already been replied to.")
        if assignment.status == AssignmentStatus.REVIEWING:
            raise CaseError(409, "The reply is waiting for review (审核中).")
        return assignment

    def reply(
        self,
        department: str,
        result: ReplyResult,
        text: str,
        attachments: list[Attachment],
        now: datetime,
        rules: Rules,
        feedback_url: str,
        by: str | None = None,
        grading: Grading | None = None,
    ) -> tuple[list[EventData], list[Timer]]:
        """答复 by the lead department; asks the submitter for feedback (回访)."""
        assignment = self._working(department, "lead")
        self._check_files(department, attachments)
        self._grade(assignment, grading or Grading(), now, rules)
        assignment.result = result
        assignment.text = text
        assignment.attachments = attachments
        responded = self._answered(assignment, now, by)
        events, timers = self._release(assignment, now, now, rules, feedback_url, by or department)
        return [*responded, *events], timers

    def _answered(self, assignment: Assignment, now: datetime, by: str | None) -> list[EventData]:
        """A reply is a contact too: it stops a 响应 clock still running."""
        if assignment.respond_due_at is None or assignment.responded_at is not None:
            return []
        return [self._responded(assignment, "答复", now, by)]

    def _grade(self, assignment: Assignment, grading: Grading, now: datetime, rules: Rules) -> None:
        """A filed (立案) submission's reply is graded A/B/C/D, a B with its plan and plan day;
        other replies are not graded."""
        if not self.filed:
            if grading.grade or grading.plan or grading.plan_due:
                raise CaseError(
                    422, "Only a filed (立案) 提案/建议 is graded 仅立案件分级答复.", "grade"
                )
            return
        if grading.grade is None:
            raise CaseError(
                422,
                "A filed (立案) submission's reply needs a grade A/B/C/D 须评定答复等级.",
                "grade",
            )
        due = None
        if grading.grade == ReplyGrade.BEING_SOLVED:
            if grading.plan is None:
                raise CaseError(422, "A grade-B reply gives its plan B类答复须有解决计划.", "plan")
            if grading.plan_due is None:
                raise CaseError(
                    422, "A grade-B reply gives the plan's day B类答复须有计划完成日期.", "plan_due"
                )
            due = rules.calendar.end_of(grading.plan_due)
            if due <= now:
                raise CaseError(
                    422, "The plan's day must be later 计划完成日期须晚于今日.", "plan_due"
                )
        elif grading.plan is not None or grading.plan_due is not None:
            raise CaseError(422, "Only a grade-B reply has a plan 仅B类答复填写计划.", "plan")
        assignment.grade, assignment.plan, assignment.plan_due_at = grading.grade, grading.plan, due

    def _check_files(self, department: str, attachments: list[Attachment]) -> None:
        """Files a reply names must be ones the department uploaded to this case."""
        for attachment in attachments:
            uploaded = self.files.get(attachment.file_id or "")
            if attachment.file_id is not None and (
                uploaded is None or uploaded.department != department
            ):
                raise CaseError(
                    422, f"No file {attachment.file_id} uploaded by {department} 附件不存在."
                )

    def _release(
        self,
        assignment: Assignment,
        replied_at: datetime,
        now: datetime,
        rules: Rules,
        feedback_url: str,
        by: str,
    ) -> tuple[list[EventData], list[Timer]]:
        """The reply (result and text on the assignment, made at ``replied_at``) goes to the
        submitter: the case waits for feedback — except a grade-B one, followed up instead."""
        assert assignment.result is not None and assignment.text is not None
        on_time = replied_at <= assignment.due_at
        replied = self._replied(assignment, replied_at, on_time)
        late = "" if on_time else " (超期答复)"
        graded = f" ({GRADE_LABELS[assignment.grade]})" if assignment.grade else ""
        summary = f"{assignment.department_name}: {assignment.result}{graded}{late}"
        if assignment.grade == ReplyGrade.BEING_SOLVED:
            return [replied], [self._follow_up(assignment, summary, now, by)]
        assignment.status = AssignmentStatus.REPLIED
        assignment.replied_at = replied_at
        self.status = CaseStatus.AWAITING_FEEDBACK
        self.feedback_round += 1
        self.feedback_due_at = rules.calendar.due(now, rules.policy.feedback_window)
        self._log(now, "答复", by, summary)
        self._log(
            now,
            "回访",
            "followup",
            f"已向提交人发送评价链接, 有效至 {_local(self.feedback_due_at)}",
        )
        self._refresh()
        events: list[EventData] = [
            replied,
            FeedbackRequested(
                opinion_id=self.id,
                office_id=self.office_id,
                tracking_no=self.tracking_no,
                feedback_url=feedback_url,
                expires_at=self.feedback_due_at,
                member_id=self.member_id,
            ),
        ]
        timer = Timer(
            case_id=self.id,
            department=assignment.department,
            kind=TimerKind.FEEDBACK,
            generation=self.feedback_round,
            fire_at=self.feedback_due_at,
        )
        return events, [timer]

    def _replied(
        self, assignment: Assignment, replied_at: datetime, on_time: bool
    ) -> AssignmentReplied:
        assert assignment.result is not None and assignment.text is not None
        return AssignmentReplied(
            opinion_id=self.id,
            office_id=self.office_id,
            tracking_no=self.tracking_no,
            department=assignment.department,
            result=assignment.result,
            text=assignment.text,
            replied_at=replied_at,
            due_at=assignment.due_at,
            on_time=on_time,
            grade=assignment.grade,
            plan=assignment.plan,
            plan_due_at=assignment.plan_due_at,
            member_id=self.member_id,
            co_signers=self.co_signers,
        )

    def _follow_up(self, assignment: Assignment, summary: str, now: datetime, by: str) -> Timer:
        """A grade-B reply: the lead keeps the case, now due on the plan's day, and is reminded
        on it (跟踪督办) until it replies again with another grade."""
        assert assignment.plan is not None and assignment.plan_due_at is not None
        assignment.status = AssignmentStatus.SIGNED
        assignment.replied_at = None
        assignment.generation += 1  # the timers of the old due date do nothing now
        assignment.due_at = assignment.plan_due_at
        assignment.escalation_level = NOT_ESCALATED
        assignment.cards.pop("reply", None)
        self._log(now, "答复", by, f"{summary}: {assignment.plan}")
        self._log(
            now,
            "跟踪督办",
            "followup",
            f"跟踪至解决, 计划完成日期 {closing_day(assignment.plan_due_at)}",
        )
        self._refresh()
        return Timer(
            case_id=self.id,
            department=assignment.department,
            kind=TimerKind.PLAN_DUE,
            generation=assignment.generation,
            fire_at=assignment.plan_due_at,
        )

    def fire(self, timer: Timer, now: datetime, rules: Rules) -> list[EventData]:
        """跟踪督办 of a grade-B reply whose plan day passed with no reply since; the rest as any
        deadline."""
        if timer.kind != TimerKind.PLAN_DUE:
            return super().fire(timer, now, rules)
        a = self.assignments.get(timer.department)
        if (
            self.status != CaseStatus.OPEN
            or a is None
            or a.generation != timer.generation
            or not a.is_active()
            or a.plan is None
            or a.plan_due_at is None
        ):
            return []
        self._log(
            now,
            "跟踪督办",
            "followup",
            f"{a.department_name}: 计划完成日期 {closing_day(a.plan_due_at)} 已到, 请续报办理结果",
        )
        return [
            PlanDue(
                opinion_id=self.id,
                office_id=self.office_id,
                tracking_no=self.tracking_no,
                department=a.department,
                plan=a.plan,
                plan_due_at=a.plan_due_at,
                reminded_at=now,
            )
        ]

    def give_input(
        self, department: str, text: str, now: datetime, by: str | None = None
    ) -> list[EventData]:
        """协办意见: a co-handler's input goes to the lead department."""
        assignment = self._working(department, "co")
        lead = self.lead()
        if lead is None:
            raise CaseError(409, "There is no lead department (主办) to give input to yet.")
        assignment.status = AssignmentStatus.REPLIED
        assignment.replied_at = now
        assignment.text = text
        self._log(
            now,
            "协办意见",
            by or department,
            f"{assignment.department_name} → {lead.department_name}",
        )
        self._refresh()
        return [
            AssignmentInputGiven(
                opinion_id=self.id,
                office_id=self.office_id,
                tracking_no=self.tracking_no,
                department=lead.department,
                from_department=department,
                text=text,
                given_at=now,
            )
        ]

    def request_extension(
        self,
        department: str,
        reason: str,
        new_day: date,
        now: datetime,
        rules: Rules,
        by: str | None = None,
    ) -> list[EventData]:
        """申请延期: before the due date, at most ``extensions_allowed`` times, to a later day."""
        assignment = self._working(department)
        if now > assignment.due_at:
            raise CaseError(
                409,
                f"The due date {_local(assignment.due_at)} has passed; an extension must be "
                "requested before it (延期须在办理期限届满前申请).",
            )
        if assignment.extension is not None and assignment.extension.status == "requested":
            raise CaseError(409, "An extension request is already waiting for a decision.")
        if assignment.extensions_used >= rules.policy.extensions_allowed:
            raise CaseError(
                409, f"At most {rules.policy.extensions_allowed} extension(s) per assignment."
            )
        requested_due = rules.calendar.end_of(new_day)
        if requested_due <= assignment.due_at:
            raise CaseError(
                422, f"new_due must be after the current due date {_local(assignment.due_at)}."
            )
        assignment.extension = Extension(
            requested_at=now, reason=reason, requested_due_at=requested_due
        )
        self._refresh()
        self._log(now, "申请延期", by or department, f"申请延期至 {new_day:%Y-%m-%d}: {reason}")
        return [
            AssignmentExtensionRequested(
                opinion_id=self.id,
                office_id=self.office_id,
                tracking_no=self.tracking_no,
                department=department,
                reason=reason,
                due_at=assignment.due_at,
                requested_due_at=requested_due,
                requested_at=now,
            )
        ]

    def decide_extension(
        self, department: str, approve: bool, reason: str, actor: str, now: datetime, rules: Rules
    ) -> tuple[list[EventData], list[Timer]]:
        """A supervisor approves (the new due date applies, timers start again) or refuses."""
        assignment = self.assignment_of(department)
        if assignment.has_ended():
            raise CaseError(409, f"{department} no longer holds this case (退回/改派).")
        extension = assignment.extension
        if extension is None or extension.status != "requested":
            raise CaseError(409, f"{department} has no extension request waiting for a decision.")
        extension.decided_by = actor
        extension.decision_reason = reason
        if not approve:
            extension.status = "refused"
            self._refresh()
            self._log(now, "延期驳回", actor, f"{assignment.department_name}: {reason}")
            refused = AssignmentExtensionRefused(
                opinion_id=self.id,
                office_id=self.office_id,
                tracking_no=self.tracking_no,
                department=department,
                reason=reason,
                decided_by=actor,
            )
            return [refused], []
        extension.status = "approved"
        assignment.extensions_used += 1
        assignment.due_at = extension.requested_due_at
        assignment.generation += 1
        assignment.overdue = False
        assignment.cards.pop("reply", None)
        self._refresh()
        self._log(
            now,
            "延期批准",
            actor,
            f"{assignment.department_name} 办理期限延至 {_local(assignment.due_at)}",
        )
        approved = AssignmentExtensionApproved(
            opinion_id=self.id,
            office_id=self.office_id,
            tracking_no=self.tracking_no,
            department=department,
            due_at=assignment.due_at,
            decided_by=actor,
        )
        return [approved], self._timers(assignment, rules, sign=False)

    def request_return(
        self,
        department: str,
        code: str,
        evidence: str,
        attachments: list[Attachment],
        now: datetime,
        rules: Rules,
        by: str | None = None,
    ) -> list[EventData]:
        """申请退单: a reason code from the district's list and evidence (who is responsible),
        within the window after 交办; a reviewer decides, and the clocks run on meanwhile."""
        assignment = self._returnable(department)
        claim = assignment.return_claim
        if claim is not None and claim.status in ("pending", "disputed"):
            raise CaseError(409, "A return request is already waiting for review (退单审核中).")
        if claim is not None:
            raise CaseError(
                409,
                "The return was rejected (退单已驳回); dispute the rejection for the final "
                "ruling (终审) instead."
                if claim.status == "rejected"
                else "The final ruling (终审) rejected the return; the department keeps the case.",
            )
        codes = rules.policy.return_codes
        if code not in codes:
            raise CaseError(422, f"reason_code must be one of: {', '.join(codes)} (退单理由代码)")
        window_end = rules.calendar.due(assignment.assigned_at, rules.policy.return_window)
        if now > window_end:
            raise CaseError(
                409,
                f"Returns must be asked for by {_local(window_end)} (退单须在交办后"
                f"{rules.policy.return_window.amount}个工作日内提出); the window has passed.",
            )
        who = by or department
        assignment.return_claim = ReturnClaim(
            code=code,
            reason=codes[code],
            evidence=evidence,
            attachments=attachments,
            requested_at=now,
            requested_by=who,
        )
        self._refresh()
        self._log(
            now, "申请退单", who, f"{assignment.department_name}: {codes[code]}; 依据: {evidence}"
        )
        return [self._return_requested(assignment, evidence, now, final=False)]

    def dispute_return(
        self, department: str, text: str, now: datetime, by: str | None = None
    ) -> list[EventData]:
        """退单申诉: the department contests a rejected return once; a supervisor other than
        the reviewer gives the final ruling (终审)."""
        assignment = self._returnable(department)
        claim = assignment.return_claim
        if claim is None or claim.status != "rejected":
            raise CaseError(409, f"{department} has no rejected return to dispute.")
        claim.status = "disputed"
        claim.dispute = text
        self._refresh()
        self._log(now, "退单申诉", by or department, f"{assignment.department_name}: {text}")
        return [self._return_requested(assignment, text, now, final=True)]

    def decide_return(
        self, department: str, accept: bool, reason: str, actor: str, now: datetime
    ) -> list[EventData]:
        """退单审核 (or 终审 of a dispute): accepted, the assignment is returned and routing
        decides again; rejected, the department keeps it and no clock starts again."""
        assignment = self._returnable(department)
        claim = assignment.return_claim
        if claim is None or claim.status not in ("pending", "disputed"):
            raise CaseError(409, f"{department} has no return request waiting for a decision.")
        final = claim.status == "disputed"
        if final and actor == claim.reviewed_by:
            raise CaseError(
                409, "The final ruling (终审) must come from another supervisor than the review."
            )
        if final:
            claim.ruled_by, claim.ruling_reason = actor, reason
        else:
            claim.reviewed_by, claim.review_reason = actor, reason
        if accept:
            claim.status = "accepted"
            return self._return(assignment, f"{claim.reason}: {claim.evidence}", now, actor)
        claim.status = "final_rejected" if final else "rejected"
        self._refresh()
        step = "终审驳回" if final else "退单驳回"
        self._log(now, step, actor, f"{assignment.department_name} 继续承办: {reason}")
        return [
            ReturnRejected(
                opinion_id=self.id,
                office_id=self.office_id,
                tracking_no=self.tracking_no,
                department=department,
                reason=reason,
                decided_by=actor,
                final=final,
                decided_at=now,
            )
        ]

    def _returnable(self, department: str) -> Assignment:
        """The department's assignment, which must still owe work."""
        assignment = self.assignment_of(department)
        if assignment.status == AssignmentStatus.RETURNED:
            raise CaseError(409, "This assignment was already returned.")
        if assignment.status == AssignmentStatus.WITHDRAWN:
            raise CaseError(409, "This assignment was withdrawn (已改派); nothing to return.")
        if not assignment.is_active() or self.status in (CaseStatus.CLOSED, CaseStatus.MERGED):
            raise CaseError(409, "Only work not yet replied to can be returned.")
        return assignment

    def _return_requested(
        self, assignment: Assignment, evidence: str, now: datetime, final: bool
    ) -> ReturnRequested:
        claim = assignment.return_claim
        assert claim is not None
        return ReturnRequested(
            opinion_id=self.id,
            office_id=self.office_id,
            tracking_no=self.tracking_no,
            department=assignment.department,
            reason_code=claim.code,
            reason=claim.reason,
            evidence=evidence,
            final=final,
            requested_at=now,
        )

    def _return(
        self, assignment: Assignment, reason: str, now: datetime, actor: str
    ) -> list[EventData]:
        """退回: routing decides again without the department."""
        assignment.status = AssignmentStatus.RETURNED
        assignment.return_reason = reason
        assignment.overdue = False
        self._refresh()
        self._log(now, "退回", actor, f"{assignment.department_name} 退回: {reason}")
        return [
            AssignmentReturned(
                opinion_id=self.id,
                office_id=self.office_id,
                tracking_no=self.tracking_no,
                department=assignment.department,
                reason=reason,
                returned_at=now,
            )
        ]

    def respond(
        self, department: str, how: str, now: datetime, by: str | None = None
    ) -> list[EventData]:
        """响应: the lead's first contact with the submitter or site visit (once; later
        contacts change nothing)."""
        assignment = self.assignment_of(department)
        if assignment.role != "lead" or assignment.respond_due_at is None:
            raise CaseError(409, "Only the lead department (主办) responds to the submitter.")
        if assignment.has_ended() or self.status in (CaseStatus.CLOSED, CaseStatus.MERGED):
            raise CaseError(409, f"{department} no longer holds this case (退回/改派/办结).")
        if assignment.responded_at is not None:
            return []
        return [self._responded(assignment, how, now, by)]

    def _responded(
        self, assignment: Assignment, how: str, now: datetime, by: str | None
    ) -> AssignmentResponded:
        due = assignment.respond_due_at
        assert due is not None
        assignment.responded_at, assignment.response = now, how
        on_time = now <= due
        late = "" if on_time else " (超期响应)"
        self._log(
            now, "响应", by or assignment.department, f"{assignment.department_name}: {how}{late}"
        )
        return AssignmentResponded(
            opinion_id=self.id,
            office_id=self.office_id,
            department=assignment.department,
            how=how,
            responded_at=now,
            respond_due_at=due,
            on_time=on_time,
        )

    def withdraw(self, department: str, reason: str, now: datetime) -> bool:
        """改派: staff moved the opinion away from the department; its assignment ends (no
        timer acts on it any more). False when there is nothing to withdraw: the department
        already returned it or had it withdrawn. A withdrawn lead's successor arrives as a new
        assignment (交办)."""
        assignment = self.assignment_of(department)
        if assignment.has_ended():
            return False
        assignment.status = AssignmentStatus.WITHDRAWN
        assignment.withdrawn_at = now
        assignment.withdraw_reason = reason
        assignment.overdue = False
        self._refresh()
        self._log(now, "改派", "routing", f"{assignment.department_name} 不再承办: {reason}")
        return True
