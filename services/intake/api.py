"""Intake HTTP API: offices register opinions and read their own."""

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from shared.auth import Principal, require
from shared.problems import Problem
from shared.store import Repository

from . import handlers
from .adapters import TrackingNumbers
from .domain import Opinion, OpinionSubmission, mask_phone

router = APIRouter(prefix="/opinions", tags=["opinions"])


@dataclass
class IntakePorts:
    opinions: Repository[Opinion]
    numbers: TrackingNumbers


def ports(request: Request) -> IntakePorts:
    return request.app.state.ports


Ports = Annotated[IntakePorts, Depends(ports)]


class OpinionAccepted(BaseModel):
    id: str
    tracking_no: str
    received_at: datetime


class OpinionView(BaseModel):
    id: str
    tracking_no: str
    office_id: str
    received_at: datetime
    submission: OpinionSubmission


@router.post("", status_code=201, summary="登记 — register an opinion")
async def submit_opinion(
    body: OpinionSubmission,
    p: Ports,
    principal: Annotated[Principal, Depends(require("opinions:submit"))],
) -> OpinionAccepted:
    opinion = await handlers.register_opinion(body, principal.subject, p.opinions, p.numbers)
    return OpinionAccepted(
        id=opinion.id, tracking_no=opinion.tracking_no, received_at=opinion.received_at
    )


@router.get("/{opinion_id}", summary="Read one opinion (an office sees only its own)")
async def read_opinion(
    opinion_id: str,
    p: Ports,
    principal: Annotated[Principal, Depends(require("opinions:read"))],
) -> OpinionView:
    opinion = await p.opinions.get(opinion_id)
    if opinion is None or not (principal.sees_all() or opinion.office_id == principal.subject):
        raise Problem(404, detail=f"No opinion {opinion_id} for this office.")
    view = OpinionView.model_validate(opinion, from_attributes=True)
    if principal.sees_all():
        submitter = view.submission.submitter
        submitter.phone = mask_phone(submitter.phone)
    return view
