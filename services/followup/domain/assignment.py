"""A department's work on its assignment."""

from datetime import date, datetime
from typing import Literal

from shared.events import (
    AssignmentExtensionApproved,
    AssignmentExtensionRefused,
    AssignmentExtensionRequested,
    AssignmentInputGiven,
    AssignmentReplied,
    AssignmentReturned,
    AssignmentSigned,
    EventData,
    FeedbackRequested,
    ReplyResult,
)
from shared.files import FileRef

from .policy import CaseError, Rules
from .records import (
    Assignment,
    AssignmentStatus,
    Attachment,
    CaseFile,
    CaseStatus,
    Extension,
    _local,
)
from .timers import Deadlines, Timer, TimerKind

MAX_CASE_FILES = 20


class DepartmentWork(Deadlines):
    """签收, 答复, 协办意见, 延期, 退回 and 改派 of one department's assignment."""

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
    ) -> tuple[list[EventData], list[Timer]]:
        """答复 by the lead department; asks the submitter for feedback (回访)."""
        assignment = self._working(department, "lead")
        self._check_files(department, attachments)
        assignment.result = result
        assignment.text = text
        assignment.attachments = attachments
        return self._release(assignment, now, now, rules, feedback_url, by or department)

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
        submitter: the case waits for feedback."""
        assert assignment.result is not None and assignment.text is not None
        assignment.status = AssignmentStatus.REPLIED
        assignment.replied_at = replied_at
        on_time = replied_at <= assignment.due_at
        self.status = CaseStatus.AWAITING_FEEDBACK
        self.feedback_round += 1
        self.feedback_due_at = rules.calendar.due(now, rules.policy.feedback_window)
        late = "" if on_time else " (超期答复)"
        summary = f"{assignment.department_name}: {assignment.result}{late}"
        self._log(now, "答复", by, summary)
        self._log(
            now,
            "回访",
            "followup",
            f"已向提交人发送评价链接, 有效至 {_local(self.feedback_due_at)}",
        )
        self._refresh()
        events: list[EventData] = [
            AssignmentReplied(
                opinion_id=self.id,
                office_id=self.office_id,
                tracking_no=self.tracking_no,
                department=assignment.department,
                result=assignment.result,
                text=assignment.text,
                replied_at=replied_at,
                due_at=assignment.due_at,
                on_time=on_time,
            ),
            FeedbackRequested(
                opinion_id=self.id,
                office_id=self.office_id,
                tracking_no=self.tracking_no,
                feedback_url=feedback_url,
                expires_at=self.feedback_due_at,
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

    def return_assignment(
        self, department: str, reason: str, now: datetime, by: str | None = None
    ) -> list[EventData]:
        """退回 a wrong assignment with a reason; routing decides again without it."""
        assignment = self.assignment_of(department)
        if assignment.status == AssignmentStatus.RETURNED:
            raise CaseError(409, "This assignment was already returned.")
        if assignment.status == AssignmentStatus.WITHDRAWN:
            raise CaseError(409, "This assignment was withdrawn (已改派); nothing to return.")
        if not assignment.is_active() or self.status == CaseStatus.CLOSED:
            raise CaseError(409, "Only work not yet replied to can be returned.")
        assignment.status = AssignmentStatus.RETURNED
        assignment.return_reason = reason
        assignment.overdue = False
        self._refresh()
        self._log(now, "退回", by or department, f"{assignment.department_name} 退回: {reason}")
        return [
            AssignmentReturned(
                opinion_id=self.id,
                office_id=self.office_id,
                tracking_no=self.tracking_no,
                department=department,
                reason=reason,
                returned_at=now,
            )
        ]

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
