"""Bounded work on request (hole 10 of issue 13, docs/security.md), in-process against the real
store: KPI tables are read from per-month sums, not summed from every fact per call, and
supervision lists have a limit and a cursor. (Streamed exports: tests/e2e/test_security.py.)"""

import contextlib
from datetime import timedelta

import httpx
from pymongo import AsyncMongoClient

from services.followup.adapters import Kpis
from services.followup.main import create_app
from shared import auth
from shared.paging import NEXT_HEADER
from shared.settings import Settings
from shared.store import Document
from tests.unit.test_followup_domain import opened


async def test_hole_10_kpis_read_from_sums_and_lists_have_a_cursor(
    isolated: Settings, mongo: AsyncMongoClient[Document]
) -> None:
    db = mongo[isolated.database("followup")]
    values = {"department": "housing", "office": "o1", "category": "城乡建设"}
    slow = Kpis(db.kpis, db.kpi_totals, refresh=timedelta(hours=1))
    for i in range(3):
        await slow.add(f"e{i}", "2026-05", values, {"sign_due": 1, "signed_on_time": i % 2})
    [row] = await slow.table("department", "2026-05")
    assert (row["value"], row["counters"]) == ("housing", {"sign_due": 3, "signed_on_time": 1})
    # Tables come from the month's sums: a read does not sum the facts again...
    await db.kpis.insert_one({"_id": "stray", "month": "2026-05", **values, "counters": {"x": 1}})
    await slow.add("e3", "2026-05", values, {"sign_due": 1})
    for _ in range(20):
        assert (await slow.table("department", "2026-05"))[0]["counters"]["sign_due"] == 3
    # ... until a change is older than ``refresh``: then once, with every fact.
    fresh = Kpis(db.kpis, db.kpi_totals, refresh=timedelta(0))
    [row] = await fresh.table("department", "2026-05")
    assert row["counters"] == {"sign_due": 4, "signed_on_time": 1, "x": 1}
    [everything] = await fresh.table("all", None)
    assert (everything["value"], everything["month"]) == ("全部", "2026-05")

    # Supervision lists: at most ``limit``, and a cursor to the next page.
    for i in range(5):
        case = opened().model_copy(update={"id": f"case-{i}", "overdue": True})
        await db.cases.insert_one(case.model_dump(by_alias=True))
    keys = mongo[isolated.database(auth.AUTH_DB)]
    supervisor = await auth.create_key(keys, auth.Role.SUPERVISOR, "duban", "督查室")
    app = create_app(isolated)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        http = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://followup")
        )
        pages, after = [], None
        while True:
            params = {"limit": 2} | ({"after": after} if after else {})
            page = await http.get(
                "/supervision/overdue",
                params=params,
                headers={"Authorization": f"Bearer {supervisor}"},
            )
            assert page.status_code == 200, page.text
            pages.append([item["id"] for item in page.json()])
            after = page.headers.get(NEXT_HEADER)
            if after is None:
                break
        too_many = await http.get(
            "/supervision/overdue",
            params={"limit": 100_000},
            headers={"Authorization": f"Bearer {supervisor}"},
        )
    assert pages == [["case-0", "case-1"], ["case-2", "case-3"], ["case-4"]]
    assert too_many.status_code == 422
