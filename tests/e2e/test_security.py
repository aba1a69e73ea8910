"""Security holes of issue 13 shown on the real stack (services as processes, real broker and
store). Each test is named after its hole; docs/security.md lists them all."""

import io
import os
import time
import zipfile
from pathlib import Path

import httpx
from openpyxl import Workbook

from .conftest import Keys, System


def _proc(pid: int, field: str) -> int:
    """A ``VmHWM``/``VmRSS`` figure of /proc/<pid>/status in kB."""
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1])


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
