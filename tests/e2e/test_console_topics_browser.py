"""The 专题 board in a real browser: opinions registered through the console become topics in
routing; the editor sees them ranked with the heat chart, names and pins one, merges another
into it and splits two opinions off; the supervisor finds the board in the menu and the audit
log names each action."""

import uuid
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, expect

from shared.settings import Settings
from tools.demo import seed_people, wait_for

from .conftest import System
from .console_client import Person
from .test_console_browser import WEB_BUILT, browser, log_in, log_out, new_page, shoot  # noqa: F401

pytestmark = pytest.mark.skipif(
    not WEB_BUILT.exists(), reason="the console is not built (make web builds it)"
)


def _opinion(title: str, content: str, district: str, street: str) -> dict[str, Any]:
    return {
        "title": title,
        "content": content,
        "channel": "走访",
        "submitter": {"kind": "群众", "name": "周女士", "phone": "13800002222"},
        "location": {"district": district, "street": street},
    }


async def test_the_topics_board_names_pins_merges_and_splits(
    system: System,
    settings: Settings,
    browser: Browser,  # noqa: F811
) -> None:
    base = system.url("console")
    people = await seed_people(settings, {})
    # Two matters in one district, with no name in common.
    tag, road = uuid.uuid4().hex[:6], uuid.uuid4().hex[:6]
    district = f"青石区{tag}"
    noise, lights = f"青石{tag}广场夜间广场舞噪音扰民", f"石门{road}大道路灯不亮"
    async with httpx.AsyncClient(timeout=15) as http:
        clerk, editor = Person(http, base), Person(http, base)
        await clerk.login("clerk", people["clerk"])
        await editor.login("editor", people["editor"])
        for title, content, streets in (
            (
                noise,
                f"青石{tag}广场每晚广场舞音响声音太大，噪音扰民到深夜。",
                ("东0", "东1", "东2"),
            ),
            (lights, f"石门{road}大道一段路灯长期不亮，夜里行人不安全。", ("西0", "西1")),
        ):
            for street in streets:
                made = await clerk.call(
                    "POST",
                    "/api/intake/opinions",
                    json=_opinion(title, content, district, f"{street}街道"),
                )
                assert made.status_code == 201, made.text

        async def board() -> list[dict[str, Any]]:
            answer = await editor.call("GET", "/api/routing/topics?limit=200")
            assert answer.status_code == 200, answer.text
            return [row for row in answer.json() if tag in row["label"] or road in row["label"]]

        await wait_for(
            lambda: _two_topics(board),
            "both topics on the board",
            within=60,
        )

    page = await new_page(browser)
    await log_in(page, base, "editor", people["editor"])
    await page.click("text=专题")
    table = page.locator("[data-test=topics]")
    await expect(table.locator("tr", has_text=noise)).to_be_visible()
    await expect(table.locator("tr", has_text=lights)).to_be_visible()
    await expect(page.locator("[data-test=chart-heat] canvas")).to_be_visible()
    await shoot(page, "21-专题看板")

    # 命名 and 置顶
    row = table.locator("tr", has_text=noise)
    await row.locator("[data-test=rename]").click()
    await page.fill("input[name=topic-name]", f"青石{tag}广场舞噪音")
    await page.click("[data-test=save-name]")
    named = table.locator("tr", has_text=f"青石{tag}广场舞噪音")
    await expect(named).to_be_visible()
    await named.locator("[data-test=pin]").click()
    await expect(named.locator(".el-tag", has_text="置顶")).to_be_visible()

    # 合并: tick the street-light topic, merge it into the noise topic.
    await table.locator("tr", has_text=lights).locator(".el-checkbox").click()
    await named.locator("[data-test=merge]").click()
    await expect(table.locator("tr", has_text=lights)).to_have_count(0)
    await expect(named).to_contain_text("5")

    # 拆分: open it, tick the two street-light opinions, split them off again.
    await named.locator("a").first.click()
    members = page.locator("[data-test=members]")
    await expect(members.locator("tr", has_text=lights)).to_have_count(2)
    for item in await members.locator("tr", has_text=lights).all():
        await item.locator(".el-checkbox").click()
    await page.click("[data-test=split]")
    await expect(table.locator("tr", has_text=lights)).to_be_visible()
    await expect(named).to_contain_text("3")
    await shoot(page, "22-专题拆分")
    await log_out(page)

    # 督查: the board is in the supervisor's menu; the audit log names the editor's actions.
    await log_in(page, base, "supervisor", people["supervisor"])
    await page.click("text=专题")
    await expect(table.locator("tr", has_text=f"青石{tag}广场舞噪音")).to_be_visible()
    await page.click("text=审计日志")
    audit = page.locator("[data-test=audit]")
    for action in ("专题命名/置顶", "专题合并", "专题拆分"):
        await expect(
            audit.locator("tr", has_text="陈思远").filter(has_text=action).first
        ).to_be_visible()
    await log_out(page)


async def _two_topics(board: Any) -> bool:
    rows = await board()
    return len(rows) == 2 and sorted(r["members"] for r in rows) == [2, 3]
