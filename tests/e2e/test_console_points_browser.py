"""履职积分 in a real browser: a supervisor opens 履职积分, a rule too large is refused at its
field in Chinese, a saved rule re-weighs a member's year at once, a version changed meanwhile
by someone else is refused, the members below their minimum are listed, one member's 一人一档
opens with its 履职报告 as a download, and the audit log names the change."""

import asyncio
import io
import uuid
from pathlib import Path
from typing import Any

import httpx
from openpyxl import load_workbook
from playwright.async_api import Browser, expect

from shared.clock import beijing_year, utcnow
from shared.settings import Settings
from tools.demo import seed_people, wait_for

from .conftest import Keys, System
from .flow import submit
from .test_console_browser import browser, log_in, new_page, pytestmark, shoot

__all__ = ["browser", "pytestmark"]


async def _enrol(http: httpx.AsyncClient, system: System, office: str, name: str, kind: str) -> str:
    enrolled = await http.post(
        f"{system.url('intake')}/members",
        headers=Keys.header(office),
        json={"name": name, "kind": kind, "sector": "经济界", "phone": "13600002222"},
    )
    assert enrolled.status_code == 201, enrolled.text
    return str(enrolled.json()["id"])


async def test_supervisor_sets_the_rules_and_reads_a_members_year(
    system: System, keys: Keys, settings: Settings, browser: Browser
) -> None:
    followup = system.url("followup")
    supervisor = Keys.header(keys.supervisor)
    people = await seed_people(settings, {})
    tag = uuid.uuid4().hex[:4]
    active_name, idle_name = f"周{tag}委员", f"吴{tag}代表"
    year = beijing_year(utcnow())
    async with httpx.AsyncClient(timeout=30) as http:
        active = await _enrol(http, system, keys.office, active_name, "委员")
        idle = await _enrol(http, system, keys.office, idle_name, "代表")
        await submit(
            http,
            system,
            keys.office,
            title="关于增设社区养老服务站的建议",
            content="建议在和平街道增设社区养老服务站，方便老年人就近养老。",
            submitter={"kind": "委员", "name": active_name},
            member_id=active,
        )

        async def on_roster() -> list[dict[str, Any]] | None:
            r = await http.get(f"{followup}/members", headers=supervisor, params={"year": year})
            assert r.status_code == 200, r.text
            found = {m["member_id"]: m for m in r.json()}
            ready = idle in found and found.get(active, {}).get("points", 0) >= 1
            return [found[active], found[idle]] if ready else None

        await wait_for(on_roster, "both members on followup's roster", within=60)
        rules = (await http.get(f"{followup}/members/points-rules", headers=supervisor)).json()
        try:
            await _walk(system, browser, people, keys, rules, active_name, idle_name, year)
        finally:
            # The rules are the session's: give the next tests the defaults again.
            await _save_rules(system, keys, rules)


async def _save_rules(system: System, keys: Keys, table: dict[str, Any]) -> None:
    """Save ``table``'s rules over the version in force, as another supervisor would."""
    url = f"{system.url('followup')}/members/points-rules"
    supervisor = Keys.header(keys.supervisor)
    async with httpx.AsyncClient(timeout=30) as http:
        now = (await http.get(url, headers=supervisor)).json()
        rules = {k: table[k] for k in ("lead", "co_signer", "annual_minimum")}
        saved = await http.put(url, headers=supervisor, json={**rules, "version": now["version"]})
        assert saved.status_code == 200, saved.text


async def _walk(
    system: System,
    browser: Browser,
    people: dict[str, str],
    keys: Keys,
    rules: dict[str, Any],
    active_name: str,
    idle_name: str,
    year: int,
) -> None:
    page = await new_page(browser)
    await log_in(page, system.url("console"), "supervisor", people["supervisor"])
    await page.click("text=履职积分")
    card = page.locator("[data-test=points-rules]")
    await expect(card.locator("[data-test=rules-version]")).to_contain_text(
        f"第 {rules['version']} 版"
    )
    submitted = card.locator("input[name='lead.submitted']")
    await expect(submitted).to_have_value(str(rules["lead"]["submitted"]))
    members = page.locator("[data-test=members]")
    row = members.locator("tr", has_text=active_name)
    points = row.locator("td").nth(3)  # 年度积分
    await expect(points).to_have_text(str(rules["lead"]["submitted"]))

    # Too large: refused at the field, in Chinese; nothing saved.
    await submitted.fill("5000")
    await page.click("[data-test=save-rules]")
    cell = card.locator(".el-form-item", has=page.locator("input[name='lead.submitted']"))
    error = cell.locator(".el-form-item__error")
    await expect(error).to_contain_text("不能大于 1000")
    await expect(card.locator("[data-test=rules-version]")).to_contain_text(
        f"第 {rules['version']} 版"
    )

    # Saved: the member's year is weighed by the new rule at once.
    await submitted.fill("6")
    await page.click("[data-test=save-rules]")
    version = rules["version"] + 1
    await expect(card.locator("[data-test=rules-version]")).to_contain_text(f"第 {version} 版")
    await expect(card.locator("[data-test=rules-version]")).to_contain_text("赵明")
    await expect(points).to_have_text("6")
    idle_row = members.locator("tr", has_text=idle_name)
    await expect(idle_row).to_contain_text("低于最低积分")
    await shoot(page, "26-履职积分")

    # Only those below their minimum: with 6 for a 委员, the idle 代表 stays, the active goes.
    minimum = card.locator("input[name='annual_minimum.委员']")
    await minimum.fill("6")
    await page.click("[data-test=save-rules]")
    await expect(card.locator("[data-test=rules-version]")).to_contain_text(f"第 {version + 1} 版")
    await page.locator("[data-test=only-below]").click()
    await expect(idle_row).to_be_visible()
    await expect(row).to_have_count(0)
    await page.locator("[data-test=only-below]").click()

    # Someone else saved meanwhile: this page's version is stale, refused with the reason.
    # (the same figures as this page's: only the version moves)
    same = {"lead": {**rules["lead"], "submitted": 6}, "annual_minimum": {"委员": 6, "代表": 10}}
    await _save_rules(system, keys, rules | same)
    await submitted.fill("7")
    await page.click("[data-test=save-rules]")
    stale = page.locator(".el-message--error", has_text="积分规则已被他人修改，请刷新后重试")
    await expect(stale).to_be_visible()

    # 一人一档 and its 履职报告.
    await row.click()
    record = page.locator("[data-test=member-record]")
    await expect(record).to_contain_text(f"{active_name}（委员）{year} 年履职档案：6 分")
    await expect(record).to_contain_text("提交（领衔） × 1")
    async with page.expect_download() as download_info:
        await record.locator("[data-test=download-report]").click()
    saved = Path(await (await download_info.value).path())
    content = await asyncio.to_thread(saved.read_bytes)
    sheet = load_workbook(io.BytesIO(content)).active
    assert sheet is not None
    table = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert table[0][:3] == ["委员/代表", "类别", "月份"] and "提交(领衔)" in table[0]
    total = next(r for r in table if r[2] == f"{year}年合计")
    assert (total[0], total[-1]) == (active_name, 6)
    assert table[-1][2] == "年度最低积分" and table[-1][-1] == 6

    # The audit log names who changed the rules.
    await page.click("text=审计日志")
    audit = page.locator("[data-test=audit]")
    await expect(
        audit.locator("tr", has_text="赵明").filter(has_text="履职积分规则").first
    ).to_be_visible()
