"""Follow-up HTTP API: the department inbox and actions, case reading, and the submitter's
feedback link."""

from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from shared.auth import Principal, Role, require
from shared.events import Rating, ReplyResult, utcnow
from shared.problems import Problem
from shared.store import Repository

from . import handlers
from .adapters import FeedbackTokens, department_inbox
from .domain import Assignment, Case, CaseError, CaseStatus, TimelineEntry

router = APIRouter(tags=["cases"])


@dataclass
class FollowupPorts:
    cases: Repository[Case]
    tokens: FeedbackTokens


def ports(request: Request) -> FollowupPorts:
    return request.app.state.ports


Ports = Annotated[FollowupPorts, Depends(ports)]
Worker = Annotated[Principal, Depends(require("cases:work"))]
Reader = Annotated[Principal, Depends(require("cases:read"))]


class CaseView(BaseModel):
    id: str
    tracking_no: str
    office_id: str
    title: str
    category: str
    urgency: str
    status: CaseStatus
    opened_at: datetime
    assignments: dict[str, Assignment]
    timeline: list[TimelineEntry]
    rating: Rating | None
    closed_at: datetime | None


class InboxItem(BaseModel):
    id: str
    tracking_no: str
    title: str
    role: str
    status: str
    due_at: datetime


class ReplyRequest(BaseModel):
    result: ReplyResult
    text: str = Field(min_length=1, max_length=4000)


class FeedbackRequest(BaseModel):
    rating: Rating
    comment: str = Field(default="", max_length=500)


class FeedbackForm(BaseModel):
    tracking_no: str
    title: str
    replies: list[Assignment]


def _view(case: Case) -> CaseView:
    return CaseView.model_validate(case, from_attributes=True)


def _may_read(principal: Principal, case: Case) -> bool:
    if principal.role == Role.OFFICE:
        return case.office_id == principal.subject
    if principal.role == Role.DEPARTMENT:
        return principal.subject in case.assignments
    return principal.sees_all()


async def _run(action: Awaitable[Case]) -> Case:
    try:
        return await action
    except CaseError as exc:
        raise Problem(exc.status, detail=str(exc)) from None


@router.get("/inbox", summary="The department's assignments")
async def inbox(p: Ports, principal: Worker) -> list[InboxItem]:
    items = []
    for case in await department_inbox(p.cases.collection, principal.subject):
        a = case.assignments[principal.subject]
        items.append(
            InboxItem(
                id=case.id,
                tracking_no=case.tracking_no,
                title=case.title,
                role=a.role,
                status=a.status,
                due_at=a.due_at,
            )
        )
    return items


@router.get("/cases/{case_id}", summary="A case with its timeline")
async def read_case(case_id: str, p: Ports, principal: Reader) -> CaseView:
    case = await p.cases.get(case_id)
    if case is None or not _may_read(principal, case):
        raise Problem(404, detail=f"No case {case_id} for you.")
    return _view(case)


@router.post("/cases/{case_id}/sign", summary="签收 — sign for an assignment")
async def sign_case(case_id: str, p: Ports, principal: Worker) -> CaseView:
    return _view(await _run(handlers.sign(p.cases, case_id, principal.subject)))


@router.post("/cases/{case_id}/reply", summary="答复 — reply with a result")
async def reply_case(case_id: str, body: ReplyRequest, p: Ports, principal: Worker) -> CaseView:
    case = await _run(
        handlers.reply(p.cases, p.tokens, case_id, principal.subject, body.result, body.text)
    )
    return _view(case)


@router.get("/feedback/{token}", tags=["feedback"], summary="What the submitter is asked to rate")
async def feedback_form(token: str, p: Ports) -> FeedbackForm:
    try:
        case_id, _ = p.tokens.verify(token, utcnow())
    except CaseError as exc:
        raise Problem(exc.status, detail=str(exc)) from None
    case = await p.cases.get(case_id)
    if case is None:
        raise Problem(404, detail="No such case.")
    replies = [a for a in case.assignments.values() if a.result is not None]
    return FeedbackForm(tracking_no=case.tracking_no, title=case.title, replies=replies)


@router.post("/feedback/{token}", tags=["feedback"], summary="评价 — the submitter rates the reply")
async def give_feedback(token: str, body: FeedbackRequest, p: Ports) -> CaseView:
    return _view(await _run(handlers.rate(p.cases, p.tokens, token, body.rating, body.comment)))
