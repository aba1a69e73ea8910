"""Routing HTTP API: read decisions and the directory."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from shared.auth import Principal, require
from shared.problems import Problem
from shared.store import Repository

from .domain import DEPARTMENTS, Decision, Department

router = APIRouter(tags=["routing"])

Reader = Annotated[Principal, Depends(require("routing:read"))]


def decisions(request: Request) -> Repository[Decision]:
    return request.app.state.decisions


@router.get("/decisions/{opinion_id}", summary="How an opinion was routed")
async def read_decision(
    opinion_id: str,
    repo: Annotated[Repository[Decision], Depends(decisions)],
    _: Reader,
) -> Decision:
    decision = await repo.get(opinion_id)
    if decision is None:
        raise Problem(404, detail=f"No routing decision for opinion {opinion_id} yet.")
    return decision


@router.get("/departments", summary="The department directory")
async def list_departments(_: Reader) -> list[Department]:
    return list(DEPARTMENTS.values())
