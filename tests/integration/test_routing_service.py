"""Routing on the real broker and document store: model versions and their hot swap,
retraining with staff corrections, and returns (退回) arriving as events."""

import asyncio
import io
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx
import pytest
from openpyxl import Workbook
from pymongo import AsyncMongoClient

from services.routing import handlers
from services.routing.classifier import LabelledText, train_classifier
from services.routing.consumers import subscribe
from services.routing.domain import DEMO_DIRECTORY, Category, Directory, Rule
from services.routing.handlers import RoutingPorts
from services.routing.main import (
    RoutingSettings,
    create_app,
    retrain_on_schedule,
    routing_ports,
    topic_ports,
)
from services.routing.topics.handlers import TopicIntake
from shared import auth
from shared.events import AssignmentReturned, CloudEvent, Location, OpinionReceived
from shared.messaging import EventBus
from shared.settings import Settings
from shared.store import Document, mongo_client
from tests.routing_samples import TOPICS, samples, to_csv
from tools.demo import wait_for

NOW = datetime(2026, 10, 1, tzinfo=UTC)


def opinion(number: int, title: str, content: str, **changes: object) -> OpinionReceived:
    return OpinionReceived(
        opinion_id=f"op-{number}",
        tracking_no=f"SQ-2026-{number:06d}",
        office_id="office-a",
        title=title,
        content=content,
        channel="热线",
        submitter_kind="群众",
        location=Location(district="示范区", street="和平街道"),
        received_at=NOW,
        **changes,
    )


def returned_by(
    department: str, number: int, reason: str = "不属于本单位职责"
) -> AssignmentReturned:
    """退回 of opinion ``number`` by ``department``."""
    return AssignmentReturned(
        opinion_id=f"op-{number}",
        department=department,
        office_id="office-a",
        tracking_no=f"SQ-2026-{number:06d}",
        reason=reason,
        returned_at=NOW,
    )


def topic_directory() -> Directory:
    """The demo directory with the made-up topics of the samples as its categories."""
    directory = DEMO_DIRECTORY.model_copy(deep=True)
    directory.categories = [Category(name=name, group="测试") for name in TOPICS]
    directory.keyword_rules = []
    leads = {"供水": "housing", "道路": "transport", "学校": "education"}
    directory.rules = [Rule(category=c, lead=lead) for c, lead in leads.items()]
    return directory


@pytest.fixture
async def routing(
    isolated: Settings, mongo: AsyncMongoClient[Document], make_bus: Callable[[str], EventBus]
) -> tuple[RoutingPorts, list[CloudEvent]]:
    """Routing consuming its queue in-process, a recorder of every event, the test directory."""
    seen: list[CloudEvent] = []

    async def record(event: CloudEvent) -> None:
        seen.append(event)

    recorder = make_bus("notification")
    recorder.consume(record)
    await recorder.start()
    bus = make_bus("routing")
    db = mongo[isolated.database("routing")]
    ports = routing_ports(db, bus, refresh=0.0)
    subscribe(bus, ports, TopicIntake(topic_ports(db, bus, RoutingSettings())))
    await bus.start()
    await handlers.replace_directory(topic_directory(), ports)
    return ports, seen


async def test_retraining_with_staff_corrections_changes_the_decision(
    routing: tuple[RoutingPorts, list[CloudEvent]],
) -> None:
    ports, _ = routing
    first = await handlers.train_model(samples(15), "test", ports)
    assert (first["version"], first["rows"], first["examples_used"]) == ("v1", 45, 0)
    drain = ("雨水篦子堵塞", "雨水篦子被树叶堵塞，下雨天水漫进小区")

    await handlers.route_opinion(opinion(1, *drain), ports)
    before = await ports.decisions.get("op-1")
    assert before is not None and before.category != "道路"

    # Editors put three such opinions under 道路; each decision becomes a labelled example.
    for number in (2, 3, 4):
        await handlers.route_opinion(opinion(number, *drain), ports)
        await handlers.decide_by_staff(
            f"op-{number}", "道路", "transport", [], None, "编辑", ports, from_triage=False
        )
    second = await handlers.retrain("test", ports)
    assert (second["version"], second["rows"], second["examples_used"]) == ("v2", 45, 3)
    assert await ports.models.active_version() == "v2"

    await handlers.route_opinion(opinion(5, *drain), ports)
    after = await ports.decisions.get("op-5")
    assert after is not None
    assert (after.category, after.lead, after.status) == ("道路", "transport", "assigned")
    assert "v2" in after.explanation
    versions = [v["_id"] for v in await ports.models.versions()]
    assert versions == ["v2", "v1"]


async def test_activating_an_older_version_is_picked_up_without_restart(
    routing: tuple[RoutingPorts, list[CloudEvent]],
) -> None:
    ports, _ = routing
    await handlers.train_model(samples(10), "test", ports)
    await handlers.train_model(samples(10, seed=2), "test", ports)
    assert (await ports.models.active()).version == "v2"  # type: ignore[union-attr]
    await ports.models.activate("v1")
    assert (await ports.models.active()).version == "v1"  # type: ignore[union-attr]


async def test_models_stored_at_the_same_moment_get_versions_of_their_own(
    routing: tuple[RoutingPorts, list[CloudEvent]],
) -> None:
    """Version numbers are claimed by unique inserts: FerretDB loses concurrent ``$inc``."""
    ports, _ = routing
    classifier = train_classifier(samples(10))
    saved = await asyncio.gather(*(ports.models.save(classifier, {}) for _ in range(16)))
    assert sorted(int(v[1:]) for v in saved) == list(range(1, 17))
    assert {v["_id"] for v in await ports.models.versions()} == set(saved)


async def test_scheduled_retraining_picks_up_corrections_once(
    routing: tuple[RoutingPorts, list[CloudEvent]],
) -> None:
    ports, _ = routing
    await handlers.train_model(samples(10), "test", ports)
    await handlers.route_opinion(opinion(8, "路灯不亮", "小区门口路灯坏了"), ports)
    await handlers.decide_by_staff(
        "op-8", "道路", "transport", [], None, "编辑", ports, from_triage=False
    )
    replicas = [asyncio.create_task(retrain_on_schedule(ports, 0.2)) for _ in range(2)]
    try:
        await wait_for(lambda: ports.models.active_version(), "a model", within=5)
        await wait_for(
            lambda: _is(ports.models.active_version(), "v2"), "scheduled retraining", within=60
        )
        await asyncio.sleep(1)  # both replicas had their turn: nothing new, no v3
    finally:
        for task in replicas:
            task.cancel()
    assert [v["_id"] for v in await ports.models.versions()] == ["v2", "v1"]
    v2 = await ports.models.info("v2")
    assert v2 is not None and (v2["source"], v2["examples_used"]) == ("schedule", 1)


async def _is(value: Awaitable[str | None], expected: str) -> bool:
    return await value == expected


async def test_training_api_keeps_the_active_model_when_a_file_is_bad(isolated: Settings) -> None:
    app = create_app(isolated)
    client = mongo_client(isolated)
    admin = await auth.create_key(
        client[isolated.database(auth.AUTH_DB)], auth.Role.ADMIN, "admin", "管理员"
    )
    headers = {"Authorization": f"Bearer {admin}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://routing") as http:
        trained = await http.post(
            "/models", headers=headers, files={"file": ("a.csv", to_csv(samples(8)), "text/csv")}
        )
        assert trained.status_code == 201, trained.text
        for bad in (b"", to_csv(samples(2), ("title", "body", "category"))):
            r = await http.post("/models", headers=headers, files={"file": ("b.csv", bad, "")})
            assert r.status_code == 422 and "unchanged" in r.json()["detail"]
        r = await http.post(
            "/models?label_column=kind",
            headers=headers,
            files={"file": ("b.csv", to_csv(samples(8)), "")},
        )
        assert r.status_code == 422 and "missing columns: kind" in r.json()["detail"]
        models = (await http.get("/models", headers=headers)).json()
    await client.close()
    assert models["active"] == trained.json()["version"] == "v1"
    assert len(models["versions"]) == 1


def _export(rows: list[LabelledText]) -> bytes:
    """An XLSX export as offices have them: more columns than the router reads."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["编号", "title", "content", "category", "kind", "time"])
    for i, row in enumerate(rows):
        kind = "投诉求助" if row.category == "道路" else "建言"
        sheet.append([i, row.title, row.content, row.category, kind, "2026-10-01"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def test_training_api_reads_xlsx_exports_any_label_column_and_shows_the_baseline(
    isolated: Settings,
) -> None:
    app = create_app(isolated)
    client = mongo_client(isolated)
    admin = await auth.create_key(
        client[isolated.database(auth.AUTH_DB)], auth.Role.ADMIN, "admin", "管理员"
    )
    headers = {"Authorization": f"Bearer {admin}"}
    upload = {"file": ("export.xlsx", _export(samples(8)), "application/octet-stream")}
    held_out = {"file": ("held.xlsx", _export(samples(4, seed=9)), "application/octet-stream")}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://routing") as http:
        by_category = await http.post("/models", headers=headers, files=upload)
        assert by_category.status_code == 201, by_category.text
        assert by_category.json()["labels"] == ["供水", "学校", "道路"]
        assert by_category.json()["ignored_columns"] == ["编号", "kind", "time"]
        by_kind = await http.post("/models?label_column=KIND", headers=headers, files=upload)
        assert by_kind.status_code == 201, by_kind.text
        assert by_kind.json()["labels"] == ["建言", "投诉求助"]
        assert by_kind.json()["ignored_columns"] == ["编号", "category", "time"]
        scored = await http.post(
            "/models/evaluate?label_column=kind", headers=headers, files=held_out
        )
        assert scored.status_code == 200, scored.text
        assert scored.json()["version"] == "v2" and scored.json()["rows"] == 12
        assert 0.5 < scored.json()["baseline_macro_f1"] <= 1.0
        back = await http.post("/models/v1/activate", headers=headers)
        assert back.status_code == 200 and back.json() == {"active": "v1"}
        models = (await http.get("/models", headers=headers)).json()
    await client.close()
    assert models["active"] == "v1"


async def test_return_events_re_decide_then_send_to_triage(
    routing: tuple[RoutingPorts, list[CloudEvent]], make_bus: Callable[[str], EventBus]
) -> None:
    ports, seen = routing
    await handlers.train_model(samples(15), "test", ports)
    await handlers.route_opinion(opinion(7, "水管漏水", "楼下自来水水管漏水，水压太低"), ports)
    decision = await ports.decisions.get("op-7")
    assert decision is not None and decision.lead == "housing"

    followup = make_bus("followup")
    await followup.start()

    async def give_back(department: str) -> CloudEvent:
        event = CloudEvent.wrap("/minyi/followup", returned_by(department, 7))
        await followup.publish(event)
        return event

    returned = await give_back("housing")
    await followup.publish(returned)  # redelivered: changes nothing twice

    def assigned_to(department: str) -> list[CloudEvent]:
        key = f"minyi.opinion.assigned.v1:{department}"
        return [e for e in seen if f"{e.type}:{e.data.get('department')}" == key]

    await wait_for(lambda: assigned_to("transport") or assigned_to("education"), "re-decision")
    decision = await ports.decisions.get("op-7")
    assert decision is not None and decision.lead in {"transport", "education"}
    assert list(decision.returns) == ["housing"]

    await give_back(decision.lead)
    triaged = await wait_for(
        lambda: [e for e in seen if e.type == "minyi.opinion.triage.v1"], "triage"
    )
    assert "returned twice" in triaged[0].data["reason"]
    queue = await ports.views.triage_queue(10)
    assert [item["_id"] for item in queue] == ["op-7"]
    disputes = await ports.views.disputes(10)
    assert set(disputes[0]["returns"]) == {"housing", decision.lead}
    assert len(assigned_to("transport") + assigned_to("education")) == 1


async def test_a_returned_assignment_becomes_a_labelled_example_the_next_training_uses(
    routing: tuple[RoutingPorts, list[CloudEvent]],
) -> None:
    ports, _ = routing
    await handlers.train_model(samples(15), "test", ports)
    text = ("水管旁雨水篦子堵塞", "水管旁边的雨水篦子被树叶堵塞，下雨天路面积水")
    await handlers.route_opinion(opinion(9, *text), ports)
    decision = await ports.decisions.get("op-9")
    assert decision is not None and (decision.category, decision.lead) == ("供水", "housing")

    returned = returned_by("housing", 9, "雨水篦子不归供水管")
    await handlers.assignment_returned(returned, "event-return-9", ports)
    await handlers.assignment_returned(returned, "event-return-9", ports)  # redelivered
    assert await ports.views.examples() == [LabelledText(*text, category="供水", rejected=True)]

    retrained = await handlers.retrain("test", ports)
    assert (retrained["version"], retrained["examples_used"]) == ("v2", 1)
    before = dict((await ports.models.load("v1")).predict(*text).ranking)
    after = dict((await ports.models.load("v2")).predict(*text).ranking)
    assert after["供水"] < before["供水"]

    # An editor who puts it back under 供水 overrules the return: their label replaces it.
    await handlers.decide_by_staff(
        "op-9", "供水", "housing", [], None, "编辑", ports, from_triage=False
    )
    assert await ports.views.examples() == [LabelledText(*text, category="供水")]
