"""Routing HTTP API: decisions, the triage queue (人工分拣), disputes (退回), the directory and
the classifier's model versions."""

import csv
import io
from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, File, Path, Query, Request, UploadFile
from pydantic import BaseModel, Field, ValidationError

from shared.auth import Principal, require
from shared.events import DEPARTMENT_CODE
from shared.problems import Problem

from . import handlers
from .classifier import DEFAULT_LABEL_COLUMN, ModelFormatError, TrainingDataError, read_labelled
from .domain import (
    Area,
    Category,
    Decision,
    Department,
    Directory,
    DirectoryTable,
    Rule,
    Urgency,
    directory_from_yaml,
    directory_with_table,
)
from .handlers import RoutingError, RoutingPorts
from .topics import handlers as topics
from .topics.domain import Topic
from .topics.handlers import TopicError, TopicPorts

router = APIRouter(tags=["routing"])

Reader = Annotated[Principal, Depends(require("routing:read"))]
Triager = Annotated[Principal, Depends(require("routing:triage"))]
Admin = Annotated[Principal, Depends(require("routing:admin"))]
# Whoever registers or handles opinions picks categories and places from the directory.
TaxonomyReader = Annotated[Principal, Depends(require("routing:taxonomy"))]
Curator = Annotated[Principal, Depends(require("topics:curate"))]


def ports(request: Request) -> RoutingPorts:
    return request.app.state.ports


Ports = Annotated[RoutingPorts, Depends(ports)]


def topic_ports(request: Request) -> TopicPorts:
    return request.app.state.topic_ports


TopicPortsDep = Annotated[TopicPorts, Depends(topic_ports)]
TopicId = Annotated[str, Path(min_length=2, max_length=40, pattern=r"^T[0-9A-Za-z_-]+$")]
LabelColumn = Annotated[
    str,
    Query(min_length=1, max_length=50, description="The column holding the label 类别列"),
]
TrainingFile = Annotated[
    UploadFile,
    File(description="CSV or XLSX with content, the label column and optionally title"),
]


def _problem(exc: RoutingError) -> Problem:
    if exc.errors:
        return Problem(exc.status, detail=exc.detail, errors=exc.errors)
    return Problem(exc.status, detail=exc.detail)


def _training_problem(exc: TrainingDataError) -> Problem:
    return Problem(
        422,
        "训练数据有误 / Invalid training data",
        detail="; ".join(exc.problems) + " — the active model is unchanged 当前模型未变",
        errors=[{"field": "file", "message": p} for p in exc.problems],
    )


class StaffDecision(BaseModel):
    """A person's routing decision."""

    category: str = Field(min_length=1, max_length=50, description="类别")
    lead: str = Field(pattern=DEPARTMENT_CODE, description="主办单位")
    co: list[str] = Field(default_factory=list, max_length=10, description="协办单位")
    urgency: Urgency | None = None


@router.get("/decisions/{opinion_id}", summary="How an opinion was routed")
async def read_decision(opinion_id: str, p: Ports, _: Reader) -> Decision:
    decision = await p.decisions.get(opinion_id)
    if decision is None:
        raise Problem(404, detail=f"No routing decision for opinion {opinion_id} yet.")
    return decision


@router.post("/decisions/{opinion_id}/reassign", summary="改派 — a person changes the routing")
async def reassign(opinion_id: str, body: StaffDecision, p: Ports, staff: Triager) -> Decision:
    return await _decide_by_staff(opinion_id, body, p, staff, from_triage=False)


@router.get("/triage", summary="人工分拣 — opinions waiting for a person, oldest first")
async def triage_queue(
    p: Ports, _: Triager, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[dict[str, Any]]:
    return await p.views.triage_queue(limit)


@router.post("/triage/{opinion_id}", summary="人工分拣 — decide an opinion from the queue")
async def decide_triage(opinion_id: str, body: StaffDecision, p: Ports, staff: Triager) -> Decision:
    return await _decide_by_staff(opinion_id, body, p, staff, from_triage=True)


async def _decide_by_staff(
    opinion_id: str, body: StaffDecision, p: RoutingPorts, staff: Principal, from_triage: bool
) -> Decision:
    try:
        return await handlers.decide_by_staff(
            opinion_id,
            body.category,
            body.lead,
            body.co,
            body.urgency,
            staff.name,
            p,
            from_triage=from_triage,
        )
    except RoutingError as exc:
        raise _problem(exc) from None


@router.get("/disputes", summary="退回 — opinions departments returned, for supervisors")
async def disputes(
    p: Ports, _: Reader, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[dict[str, Any]]:
    return await p.views.disputes(limit)


@router.get("/departments", summary="The department directory")
async def list_departments(p: Ports, _: Reader) -> list[Department]:
    return list((await handlers.current_directory(p)).departments.values())


class Taxonomy(BaseModel):
    categories: list[Category]
    areas: list[Area]


@router.get("/taxonomy", summary="The categories and areas to choose from (no rules, no staff)")
async def taxonomy(p: Ports, _: TaxonomyReader) -> Taxonomy:
    directory = await handlers.current_directory(p)
    return Taxonomy(categories=directory.categories, areas=list(directory.areas.values()))


@router.get("/directory", summary="Departments, areas, categories and rules")
async def read_directory(p: Ports, _: Reader) -> Directory:
    return await handlers.current_directory(p)


async def _replace(directory: Directory, p: RoutingPorts) -> Directory:
    try:
        return await handlers.replace_directory(directory, p)
    except RoutingError as exc:
        raise _problem(exc) from None


@router.put("/directory", summary="Replace the whole directory")
async def put_directory(directory: Directory, p: Ports, _: Admin) -> Directory:
    return await _replace(directory, p)


@router.post("/directory/rules", summary="Add or replace the rule for a category × area")
async def put_rule(rule: Rule, p: Ports, _: Admin) -> Directory:
    current = await handlers.current_directory(p)
    rules = [r for r in current.rules if (r.category, r.area) != (rule.category, rule.area)]
    return await _replace(current.model_copy(update={"rules": [*rules, rule]}), p)


@router.post(
    "/directory/import",
    summary="Import a directory file: YAML (the whole directory) or CSV (one table)",
)
async def import_directory(
    p: Ports,
    _: Admin,
    file: Annotated[UploadFile, File(description="directory.yaml, or a CSV of one table")],
    table: Annotated[
        DirectoryTable | None, Query(description="For CSV: which table the file replaces")
    ] = None,
) -> Directory:
    data = await file.read()
    name = (file.filename or "").lower()
    try:
        if name.endswith((".yaml", ".yml")):
            directory = directory_from_yaml(data.decode("utf-8-sig"))
        elif name.endswith(".csv"):
            if table is None:
                raise Problem(
                    422,
                    detail="Say which table the CSV holds 请指定表: ?table="
                    + "|".join(DirectoryTable),
                )
            rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
            directory = directory_with_table(await handlers.current_directory(p), table, rows)
        else:
            raise Problem(415, detail="Send a .yaml/.yml or .csv file 仅支持 YAML 或 CSV 文件")
    except (UnicodeDecodeError, yaml.YAMLError, ValueError) as exc:
        if isinstance(exc, ValidationError):
            errors = [
                {"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()
            ]
            fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
            raise Problem(
                422, detail=f"Invalid directory 目录有误: {fields}", errors=errors
            ) from None
        raise Problem(422, detail=f"Unreadable file 文件无法读取: {exc}") from None
    return await _replace(directory, p)


@router.get("/models", summary="Classifier versions, newest first")
async def list_models(p: Ports, _: Reader) -> dict[str, Any]:
    return {"active": await p.models.active_version(), "versions": await p.models.versions()}


@router.post("/models", status_code=201, summary="Train a model on a CSV or XLSX file")
async def train(
    p: Ports, _: Admin, file: TrainingFile, label_column: LabelColumn = DEFAULT_LABEL_COLUMN
) -> dict[str, Any]:
    try:
        read = read_labelled(await file.read(), file.filename or "", label_column=label_column)
        trained = await handlers.train_model(read.rows, "api", p)
    except TrainingDataError as exc:
        raise _training_problem(exc) from None
    return {**trained, "ignored_columns": read.ignored_columns}


@router.post("/models/retrain", status_code=201, summary="Retrain with the staff corrections")
async def retrain(p: Ports, _: Triager) -> dict[str, Any]:
    try:
        return await handlers.retrain("api", p)
    except TrainingDataError as exc:
        raise _training_problem(exc) from None


@router.post("/models/{version}/activate", summary="Make a stored version the active model")
async def activate(version: str, p: Ports, _: Admin) -> dict[str, str]:
    try:
        await p.models.activate(version)
    except LookupError:
        raise Problem(404, detail=f"No model version {version!r}.") from None
    except ModelFormatError:
        raise Problem(
            409,
            detail=f"Model {version!r} is not a valid stored model 模型数据无效, not activated.",
        ) from None
    return {"active": version}


@router.post("/models/evaluate", summary="Score the active model on labelled rows (CSV/XLSX)")
async def evaluate(
    p: Ports, _: Reader, file: TrainingFile, label_column: LabelColumn = DEFAULT_LABEL_COLUMN
) -> dict[str, Any]:
    try:
        read = read_labelled(
            await file.read(), file.filename or "", label_column=label_column, for_training=False
        )
        return await handlers.evaluate_active(read.rows, p)
    except TrainingDataError as exc:
        raise _training_problem(exc) from None
    except RoutingError as exc:
        raise _problem(exc) from None


# -- 专题 hot topics ---------------------------------------------------------------------------


async def _answer(change: Awaitable[Topic]) -> "TopicView":
    """The changed topic, or the problem the change was refused with."""
    try:
        return TopicView.of(await change)
    except TopicError as exc:
        if exc.field:
            errors = [{"field": exc.field, "message": exc.detail}]
            raise Problem(exc.status, detail=exc.detail, errors=errors) from None
        raise Problem(exc.status, detail=exc.detail) from None


class TopicRow(BaseModel):
    id: str
    label: str
    heat: float
    members: int
    pinned: bool
    keywords: list[str]
    first_seen: datetime
    last_seen: datetime


class TopicMember(BaseModel):
    title: str
    at: datetime
    districts: list[str]
    street: str | None
    likes: int
    supporters: int


class TopicView(BaseModel):
    """A topic: its label (staff's name if given), keywords, representative opinions, heat and
    what it is made of, first and last seen, and the member opinions."""

    id: str
    label: str
    name: str | None
    detected_label: str
    pinned: bool
    keywords: list[str]
    representatives: list[str]
    heat: float
    heat_parts: dict[str, int]
    first_seen: datetime | None
    last_seen: datetime | None
    merged_into: str | None
    members: dict[str, TopicMember]

    @classmethod
    def of(cls, topic: Topic) -> "TopicView":
        return cls(
            id=topic.id,
            label=topic.shown_label(),
            name=topic.name,
            detected_label=topic.label,
            pinned=topic.pinned,
            keywords=topic.keywords,
            representatives=topic.representatives,
            heat=topic.heat,
            heat_parts=topic.heat_parts,
            first_seen=topic.first_seen,
            last_seen=topic.last_seen,
            merged_into=topic.merged_into,
            members={
                oid: TopicMember.model_validate(m, from_attributes=True)
                for oid, m in topic.members.items()
            },
        )


class TopicChange(BaseModel):
    """命名 / 置顶: give the topic a name (null: back to the detected label) or pin it."""

    model_config = {"extra": "forbid"}

    name: str | None = Field(default=None, min_length=1, max_length=100, description="专题名称")
    pinned: bool | None = Field(default=None, description="置顶")


class TopicMerge(BaseModel):
    model_config = {"extra": "forbid"}

    topics: list[Annotated[str, Field(min_length=2, max_length=40)]] = Field(
        min_length=1, max_length=20, description="Topics to merge into this one 并入的专题"
    )


class TopicSplit(BaseModel):
    model_config = {"extra": "forbid"}

    opinions: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        min_length=1,
        max_length=200,
        description="Opinions that form a topic of their own 拆出的意见",
    )


@router.get("/topics", summary="专题看板: pinned first, then hottest")
async def list_topics(
    p: TopicPortsDep,
    _: Reader,
    limit: Annotated[int, Query(ge=1, le=200, description="At most this many topics")] = 50,
) -> list[TopicRow]:
    return [
        TopicRow(id=d["_id"], **{k: v for k, v in d.items() if k != "_id"})
        for d in await p.window.hottest(limit)
    ]


@router.get("/topics/{topic_id}", summary="One topic: label, keywords, heat, members")
async def read_topic(topic_id: TopicId, p: TopicPortsDep, _: Reader) -> TopicView:
    topic = await p.topics.get(topic_id)
    if topic is None:
        raise Problem(404, detail=f"没有专题 {topic_id} / no topic {topic_id}")
    return TopicView.of(topic)


@router.put("/topics/{topic_id}", summary="命名、置顶 a topic")
async def change_topic(
    topic_id: TopicId, body: TopicChange, p: TopicPortsDep, _: Curator
) -> TopicView:
    if body.pinned is None and "name" not in body.model_fields_set:
        raise Problem(
            422,
            detail="请给出 name 或 pinned / give name or pinned",
            errors=[{"field": "name", "message": "name or pinned is required"}],
        )
    clear = "name" in body.model_fields_set and body.name is None
    return await _answer(topics.curate(topic_id, body.name, body.pinned, clear, p))


@router.post("/topics/{topic_id}/merge", summary="合并: other topics join this one")
async def merge_topics(
    topic_id: TopicId, body: TopicMerge, p: TopicPortsDep, _: Curator
) -> TopicView:
    return await _answer(topics.merge(topic_id, list(dict.fromkeys(body.topics)), p))


@router.post(
    "/topics/{topic_id}/split", status_code=201, summary="拆分: opinions leave for a new topic"
)
async def split_topic(
    topic_id: TopicId, body: TopicSplit, p: TopicPortsDep, _: Curator
) -> TopicView:
    return await _answer(topics.split(topic_id, list(dict.fromkeys(body.opinions)), p))
