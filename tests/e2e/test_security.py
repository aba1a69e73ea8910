"""Security holes of issue 13 shown on the real stack (services as processes, real broker and
store). Each test is named after its hole; docs/security.md lists them all."""

import contextlib
import io
import os
import time
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from openpyxl import Workbook, load_workbook
from pymongo import AsyncMongoClient

from shared import auth
from shared.settings import Settings
from shared.store import Document, mongo_client
from tests.unit.test_intake_domain import opinion, submission

from .conftest import Keys, System


def _proc(pid: int, field: str) -> int:
    """A ``VmHWM``/``VmRSS`` figure of /proc/<pid>/status in kB."""
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1])


@contextlib.asynccontextmanager
async def _removed(client: AsyncMongoClient[Document], opinions: Any) -> AsyncIterator[None]:
    """The test's bulk opinions leave the store with the test (other tests list opinions)."""
    try:
        yield
    finally:
        await opinions.delete_many({"office_id": "office-export"})
        await client.close()


def _reset_peak(pid: int) -> None:
    """Set the peak RSS (VmHWM) to the current RSS (Linux 4.0+)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


SHARED_STRINGS_TYPE = (
    b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
    b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
)


def xlsx_bomb(strings: int) -> bytes:
    """A valid workbook whose sharedStrings.xml holds ``strings`` tiny strings: deflate packs
    the repetition about 500:1, openpyxl unpacks every one into a Python string."""
    book = Workbook()
    book.active.append(["标题", "内容"])
    plain = io.BytesIO()
    book.save(plain)
    out = io.BytesIO()
    with (
        zipfile.ZipFile(plain) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as bomb,
    ):
        for item in source.infolist():
            content = source.read(item)
            if item.filename == "[Content_Types].xml":
                content = content.replace(b"</Types>", SHARED_STRINGS_TYPE + b"</Types>")
            bomb.writestr(item, content)
        with bomb.open("xl/sharedStrings.xml", "w", force_zip64=True) as shared:
            shared.write(b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">')
            chunk = b"<si><t>a</t></si>" * 10_000
            for _ in range(strings // 10_000):
                shared.write(chunk)
            shared.write(b"</sst>")
    return out.getvalue()


async def test_hole_05_xlsx_bomb_is_refused_fast_with_bounded_memory(
    system: System, keys: Keys
) -> None:
    bomb = xlsx_bomb(3_000_000)  # 51 MB of XML in 125 KB
    assert len(bomb) < 200_000
    pid = system.processes["intake"].pid
    _reset_peak(pid)
    before_kb, cpu_before, started = _proc(pid, "VmRSS"), _cpu_seconds(pid), time.monotonic()
    async with httpx.AsyncClient(timeout=120) as http:
        response = await http.post(
            f"{system.url('intake')}/imports",
            params={"filename": "bomb.xlsx"},
            headers=Keys.header(keys.office),
            content=bomb,
        )
    seconds, cpu = time.monotonic() - started, _cpu_seconds(pid) - cpu_before
    peak_growth_mb = (_proc(pid, "VmHWM") - before_kb) / 1024
    print(
        f"bomb {len(bomb)} B: HTTP {response.status_code} in {seconds:.2f} s, "
        f"intake CPU {cpu:.2f} s, peak RSS +{peak_growth_mb:.0f} MB"
    )
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "展开后过大" in response.json()["detail"]
    # main: +677 MB and 10 s of CPU for a 300 KB bomb; refused from the zip directory it is
    # a few MB and a fraction of a second.
    assert peak_growth_mb < 50
    assert cpu < 2.0


async def test_hole_10_export_is_streamed_with_bounded_memory(
    system: System, settings: Settings
) -> None:
    """3000 long opinions (about 40 MB of text) exported as XLSX and CSV: intake reads them in
    batches and builds the rows off the event loop, so its peak RSS grows by a batch, not by
    the whole export (main: every opinion in memory at once, then the whole workbook)."""
    client = mongo_client(settings)
    db = client[settings.database(auth.AUTH_DB)]
    key = await auth.create_key(db, auth.Role.OFFICE, "office-export", "导出办公室")
    template = opinion("x", 1)
    content = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(4000))
    docs = []
    for i in range(3000):
        one = template.model_copy(
            update={
                "id": f"export-{i:05d}",
                "tracking_no": f"SQ-2026-9{i:05d}",
                "office_id": "office-export",
                "submission": submission(title=f"导出 {i}", content=content),
            }
        )
        docs.append({**one.model_dump(by_alias=True), "outbox": {}})
    intake = client[settings.database("intake")].opinions
    for start in range(0, len(docs), 500):
        await intake.insert_many(docs[start : start + 500])
    pid = system.processes["intake"].pid
    growth = {}
    async with httpx.AsyncClient(timeout=300) as http, _removed(client, intake):
        for format in ("xlsx", "csv"):
            _reset_peak(pid)
            before_kb = _proc(pid, "VmRSS")
            response = await http.get(
                f"{system.url('intake')}/opinions/export",
                params={"format": format},
                headers=Keys.header(key),
            )
            growth[format] = (_proc(pid, "VmHWM") - before_kb) / 1024
            assert response.status_code == 200, response.text
            if format == "xlsx":
                book = load_workbook(io.BytesIO(response.content), read_only=True)
                rows = list(book.active.iter_rows(values_only=True))
                assert len(rows) == 3001 and rows[1][0] == "SQ-2026-900000"
            else:
                lines = response.content.decode("utf-8-sig").splitlines()
                assert len(lines) == 3001 and lines[-1].startswith("SQ-2026-902999")
                assert "content-length" not in response.headers  # streamed, not built first
    print(
        f"export of 3000 opinions: intake peak RSS +{growth['xlsx']:.0f} MB (xlsx), "
        f"+{growth['csv']:.0f} MB (csv)"
    )
    # main: +73 MB (xlsx) and +103 MB (csv); streamed about +25 MB each.
    assert growth["xlsx"] < 50 and growth["csv"] < 50
