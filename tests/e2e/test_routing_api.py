"""Routing through the running services: the triage queue and a staff decision that opens the
case, bad training files refused with the models unchanged, and a rule naming an unknown
department refused. (Nothing here trains a model: the services are shared by the session.)"""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.routing.classifier import LabelledText
from shared import auth
from shared.settings import Settings
from shared.store import mongo_client
from tests.routing_samples import samples, to_csv
from tools.demo import wait_for

from .conftest import Keys, System
from .flow import case_of, submit


@pytest.fixture(scope="module")
async def staff(settings: Settings) -> AsyncIterator[dict[str, str]]:
    """Headers of an editor (登记分类编辑) and an admin."""
    client = mongo_client(settings)
    db = client[settings.database(auth.AUTH_DB)]
    editor = await auth.create_key(db, auth.Role.EDITOR, "editor", "分拣员小王")
    admin = await auth.create_key(db, auth.Role.ADMIN, "admin", "管理员")
    await client.close()
    yield {"editor": editor, "admin": admin}


async def test_unplaced_opinion_waits_in_triage_until_staff_decide(
    system: System, keys: Keys, staff: dict[str, str]
) -> None:
    routing = system.url("routing")
    editor = Keys.header(staff["editor"])
    async with httpx.AsyncClient(timeout=30) as http:
        # Filed as 其他, which no rule places: a person decides.
        opinion_id = await submit(
            http,
            system,
            keys.office,
            title="社区活动室开放时间",
            content="希望活动室周末开放。",
            category_hint="其他",
        )

        async def queued() -> list[dict[str, str]]:
            r = await http.get(f"{routing}/triage", headers=editor)
            return [item for item in r.json() if item["_id"] == opinion_id]

        item = (await wait_for(queued, "the opinion in the triage queue", within=60))[0]
        assert item["reason"]
        cannot = await http.get(f"{routing}/triage", headers=Keys.header(keys.supervisor))
        assert cannot.status_code == 403

        choice = {"category": "教育文体", "lead": "education", "co": ["culture-tourism"]}
        r = await http.post(f"{routing}/triage/{opinion_id}", headers=editor, json=choice)
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["decided_by"]) == ("assigned", "分拣员小王")
        again = await http.post(f"{routing}/triage/{opinion_id}", headers=editor, json=choice)
        assert again.status_code == 409
        assert again.headers["content-type"] == "application/problem+json"

        async def fully_assigned() -> dict[str, Any] | None:
            case = await case_of(http, system, keys.office, opinion_id)
            return case if len(case["assignments"]) == 2 else None

        case = await wait_for(fully_assigned, "both assignments", within=60)
        roles = {code: a["role"] for code, a in case["assignments"].items()}
        assert roles == {"education": "lead", "culture-tourism": "co"}
        assert await queued() == []


async def test_bad_training_files_are_refused_and_the_models_stay(
    system: System, staff: dict[str, str]
) -> None:
    routing = system.url("routing")
    admin = Keys.header(staff["admin"])

    def upload(data: bytes) -> dict[str, tuple[str, bytes, str]]:
        return {"file": ("train.csv", data, "text/csv")}

    async with httpx.AsyncClient(timeout=120) as http:
        before = (await http.get(f"{routing}/models", headers=admin)).json()
        bad = {
            "empty": (b"", "empty"),
            "missing columns": (
                to_csv(samples(2), ("title", "text", "label")),
                "missing columns: content, category",
            ),
            "one example": (to_csv([*samples(2), LabelledText("孤例", "仅一条", "孤类")]), "孤类"),
            "huge": (b"title,content,category\n" + b"x" * 31_000_000, ""),
        }
        for name, (data, says) in bad.items():
            r = await http.post(f"{routing}/models", headers=admin, files=upload(data))
            assert r.status_code in (413, 422), (name, r.text)
            assert r.headers["content-type"] == "application/problem+json", name
            assert says in r.json()["detail"], (name, r.json())
        assert (await http.get(f"{routing}/models", headers=admin)).json() == before


async def test_rule_naming_an_unknown_department_is_refused(
    system: System, staff: dict[str, str]
) -> None:
    routing = system.url("routing")
    admin = Keys.header(staff["admin"])
    async with httpx.AsyncClient(timeout=30) as http:
        before = (await http.get(f"{routing}/directory", headers=admin)).json()
        rule = {"category": "交通运输", "area": "heping", "lead": "nobody", "co": ["ghosts"]}
        r = await http.post(f"{routing}/directory/rules", headers=admin, json=rule)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        fields = {e["field"] for e in r.json()["errors"]}
        assert {f"rules.{len(before['rules'])}.lead", f"rules.{len(before['rules'])}.co"} == fields
        assert "nobody" in str(r.json()["errors"])

        yaml_file = {"file": ("directory.yaml", "district: 示范区\nplanet: mars\n".encode(), "")}
        r = await http.post(f"{routing}/directory/import", headers=admin, files=yaml_file)
        assert r.status_code == 422 and "fallback" in r.json()["detail"], r.text

        after = (await http.get(f"{routing}/directory", headers=admin)).json()
        assert after["rules"] == before["rules"]


async def test_offices_and_departments_read_the_taxonomy_but_not_the_rules(
    system: System, keys: Keys
) -> None:
    routing = system.url("routing")
    async with httpx.AsyncClient(timeout=30) as http:
        for key in (keys.office, keys.departments["housing"]):
            r = await http.get(f"{routing}/taxonomy", headers=Keys.header(key))
            assert r.status_code == 200, r.text
            body = r.json()
            assert set(body) == {"categories", "areas"}
            assert {"name": "城乡建设", "group": "城建与环境"} in body["categories"]
            assert any(a["level"] == "street" for a in body["areas"])
        r = await http.get(f"{routing}/directory", headers=Keys.header(keys.office))
        assert r.status_code == 403
        assert (await http.get(f"{routing}/taxonomy")).status_code == 401
