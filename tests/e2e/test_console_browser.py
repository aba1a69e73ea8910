"""The console in a real browser (Debian's chromium through Playwright), walked as its users
would: an office clerk, triage staff, a department handler, a supervisor, the submitter, and
someone who forgets their password. Each main page is photographed on the way
(``MINYI_CONSOLE_SCREENSHOTS=docs/console`` writes them where the README shows them)."""

import asyncio
import csv
import io
import os
import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from shared.clock import BEIJING, utcnow
from shared.settings import Settings
from tools.demo import WebhookSink, seed_people, wait_for

from .conftest import LOGS, PORT_BASE, System
from .console_client import Person

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(os.environ.get("MINYI_CONSOLE_SCREENSHOTS") or LOGS / "screens")
WEB_BUILT = Path("services/console/web/dist/index.html")

pytestmark = pytest.mark.skipif(
    not WEB_BUILT.exists(), reason="the console is not built (make web builds it)"
)

ELEVATOR = "幸福小区3号楼电梯长期故障无人维修"
REPAIR_PHOTO = b"\x89PNG\r\n\x1a\n" + b"elevator-repaired" * 40
ELEVATOR_TEXT = (
    "幸福小区3号楼电梯半年来多次故障停运，物业一直推诿不修，老人上下楼十分困难，希望尽快督促维修。"
)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    await asyncio.to_thread(SHOTS.mkdir, parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield launched
        await launched.close()


async def new_page(browser: Browser) -> Page:
    context = await browser.new_context(
        viewport={"width": 1440, "height": 900},
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
        accept_downloads=True,
    )
    page = await context.new_page()
    page.set_default_timeout(20_000)
    return page


async def shoot(page: Page, name: str) -> None:
    await page.wait_for_load_state("networkidle")
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def log_in(page: Page, base: str, login: str, password: str) -> None:
    await page.goto(f"{base}/login")
    await page.fill("input[name=login]", login)
    await page.fill("input[name=password]", password)
    await page.click("button:has-text('登录')")
    await expect(page.locator("[data-test=who]")).to_be_visible()


async def log_out(page: Page) -> None:
    await page.click("button:has-text('退出')")
    await expect(page.locator("input[name=login]")).to_be_visible()


async def choose(page: Page, select: str, option: str) -> None:
    """Pick ``option`` in an Element Plus select (its options live in a popper)."""
    await page.click(select)
    await page.locator(".el-select-dropdown__item:visible", has_text=option).first.click()


async def register(page: Page, title: str, content: str, category: str, street: str) -> None:
    await page.fill("input[name=title]", title)
    await page.fill("textarea[name=content]", content)
    await choose(
        page, "[data-test=register-form] .el-form-item:has-text('来源渠道') .el-select", "接待日"
    )
    await page.fill("input[name=submitter-name]", "刘阿姨")
    await page.fill("input[name=phone]", "13700001111")
    # Places are picked from the directory's areas, the street under the chosen district.
    await choose(
        page, "[data-test=register-form] .el-form-item:has-text('所在区') .el-select", "示范区"
    )
    await choose(
        page, "[data-test=register-form] .el-form-item:has-text('街道/镇') .el-select", street
    )
    await choose(
        page, "[data-test=register-form] .el-form-item:has-text('类别') .el-select", category
    )
    await page.click("[data-test=register-form] button[type=submit]")


async def test_the_console_walked_by_its_users(
    system: System, settings: Settings, browser: Browser
) -> None:
    base = system.url("console")
    people = await seed_people(settings, {})
    sink = WebhookSink(PORT_BASE + 197)  # inside the run's allowed webhook ports
    async with sink.running(), httpx.AsyncClient(timeout=10) as http:
        # The office's own webhook tells it the feedback link (to pass on to the submitter).
        office = Person(http, base)
        await office.login("clerk", people["clerk"])
        hook = await office.call(
            "POST", "/api/notification/subscriptions/webhooks", json={"url": sink.url}
        )
        assert hook.status_code == 201, hook.text
        sink.secrets.append(hook.json()["secret"])
        admin = Person(http, base)
        await admin.login("admin", people["admin"])
        # 幸福街道's handler (幸福街道 leads 城乡建设 there; no other test works for it), and
        # someone who will forget their password.
        for person in (
            {
                "login": "xf.handler",
                "name": "吴晓峰",
                "unit": "xingfu-street",
                "roles": ["department"],
            },
            {"login": "sun.qi", "name": "孙琪", "unit": "cppcc-office", "roles": ["office"]},
        ):
            made = await admin.call(
                "POST", "/console/people", json={**person, "password": "Minyi-2026x"}
            )
            assert made.status_code == 201, made.text

        page = await new_page(browser)

        # -- 办公室: log in, register, see the duplicate warning, import a sheet -------------
        await page.goto(f"{base}/login")
        await shoot(page, "01-登录")
        await log_in(page, base, "clerk", people["clerk"])
        await expect(page).to_have_url(f"{base}/office/register")
        # Bad input: the form says so at the fields, in Chinese.
        await page.click("[data-test=register-form] button[type=submit]")
        await expect(page.locator(".el-form-item__error", has_text="请填写标题")).to_be_visible()
        await expect(
            page.locator(".el-form-item__error", has_text="请选择来源渠道")
        ).to_be_visible()
        await register(page, ELEVATOR, ELEVATOR_TEXT, "城乡建设", "幸福街道")
        accepted = page.locator("[data-test=accepted]")
        await expect(accepted).to_contain_text("已受理")
        await shoot(page, "02-意见登记")
        await register(
            page, ELEVATOR + "的问题", "3号楼电梯" + ELEVATOR_TEXT, "城乡建设", "幸福街道"
        )
        await expect(page.locator("[data-test=duplicate-warning]")).to_contain_text(
            "与在办意见相近，将作为附议"
        )
        await shoot(page, "03-附议提示")
        await page.reload()
        await register(
            page,
            "关于社区议事会的建议",
            "建议社区每季度召开议事会，听取居民意见。",
            "其他",
            "光明街道",
        )
        await expect(accepted).to_contain_text("已受理")

        await page.click("text=批量导入")
        sheet = io.StringIO()
        writer = csv.writer(sheet)
        writer.writerow(["标题", "内容", "渠道", "提交人类型", "提交人", "区", "街道"])
        writer.writerow(
            [
                "和平路路灯不亮",
                "和平路多盏路灯夜间不亮。",
                "走访",
                "群众",
                "张先生",
                "示范区",
                "和平街道",
            ]
        )
        writer.writerow(["", "没有标题的一行", "走访", "群众", "李先生", "示范区", "和平街道"])
        writer.writerow(
            ["渠道不对的一行", "内容", "飞鸽传书", "群众", "王先生", "示范区", "和平街道"]
        )
        upload = page.locator("[data-test=upload] input[type=file]")
        await upload.set_input_files(
            {
                "name": "导入.csv",
                "mimeType": "text/csv",
                "buffer": sheet.getvalue().encode("utf-8-sig"),
            }
        )
        await expect(page.locator("[data-test=import-done]")).to_contain_text("新建 1 件")
        problems = page.locator("[data-test=problems] .el-table__body tr")
        await expect(problems).to_have_count(2)
        await shoot(page, "04-批量导入")
        async with page.expect_download() as download_info:
            await page.click("[data-test=download-errors]")
        download = await download_info.value
        saved = Path(await download.path())
        errors = await asyncio.to_thread(saved.read_text, encoding="utf-8-sig")
        assert errors.splitlines()[0] == "行号,字段,问题"
        assert {line.split(",")[0].strip('"') for line in errors.splitlines()[1:]} == {"3", "4"}
        await log_out(page)

        # -- 分类交办: the unplaced opinion gets a lead ----------------------------------------
        await log_in(page, base, "editor", people["editor"])
        await expect(page).to_have_url(f"{base}/triage")
        row = page.locator("[data-test=triage] tr", has_text="关于社区议事会的建议")
        await expect(row).to_be_visible()
        await shoot(page, "05-分类交办")
        await row.locator("button:has-text('交办')").click()
        await page.fill("input[name=category]", "城乡建设")
        await choose(
            page, ".el-dialog .el-form-item:has-text('主办单位') .el-select", "幸福街道办事处"
        )
        await page.click("[data-test=assign]")
        await expect(row).to_have_count(0)
        await log_out(page)

        # -- 督查: the dashboard before any work is done ---------------------------------------
        await log_in(page, base, "supervisor", people["supervisor"])
        await choose(page, "[data-test=unit]", "幸福街道办事处")
        await expect(page.locator("[data-shown=xingfu-street]")).to_be_visible()
        before = await page.locator("[data-test=kpi-timely_sign_rate]").inner_text()
        assert "—" in before
        await log_out(page)

        # -- 承办单位: sign, ask for an extension --------------------------------------------
        await log_in(page, base, "xf.handler", "Minyi-2026x")
        await expect(page).to_have_url(f"{base}/department/inbox")
        elevator = page.locator("[data-test=inbox] tr", has_text=ELEVATOR)
        await expect(elevator).to_be_visible(timeout=30_000)
        await expect(
            page.locator("[data-test=inbox] tr", has_text="关于社区议事会的建议")
        ).to_be_visible()
        await shoot(page, "06-承办待办")
        await elevator.locator("a").click()
        await expect(page.locator("[data-test=case]")).to_contain_text(ELEVATOR)
        case_url = page.url
        # The whole opinion (intake's copy reaches the case a moment after it opens), the
        # contact masked until revealed, and the reveal recorded.
        case_id = case_url.rsplit("/", 1)[1]

        async def briefed() -> bool:
            found = await admin.call("GET", f"/api/followup/cases/{case_id}")
            return found.status_code == 200 and found.json()["opinion"] is not None

        await wait_for(briefed, "the opinion's copy at the case")
        await page.reload()
        await expect(page.locator("[data-test=content]")).to_contain_text(ELEVATOR_TEXT)
        await expect(page.locator("[data-test=case]")).to_contain_text("137****1111")
        await expect(page.locator("[data-test=case]")).not_to_contain_text("13700001111")
        await page.click("[data-test=reveal]")
        await expect(page.locator("[data-test=contact]")).to_contain_text("13700001111")
        await page.click("[data-test=sign]")
        await page.click("[data-test=open-extension]")
        later = (utcnow().astimezone(BEIJING).date() + timedelta(days=20)).isoformat()
        await page.fill(".el-dialog input[name=new-due]", later)
        await page.keyboard.press("Enter")
        await page.click("[data-test=send-extension]")  # no reason yet: refused at the field
        await expect(page.locator(".el-form-item__error").first).to_be_visible()
        await page.fill("textarea[name=extension-reason]", "需协调电梯厂家更换主板")
        await page.click("[data-test=send-extension]")
        await expect(page.locator(".el-timeline")).to_contain_text("申请延期")
        # The timeline names the person and the unit, not only the department.
        await expect(page.locator(".el-timeline")).to_contain_text(
            "签收 · 吴晓峰（幸福街道办事处）"
        )
        await shoot(page, "07-案件办理")
        await log_out(page)

        # -- 督查: approves the extension from the queue of requests waiting ------------------
        await log_in(page, base, "supervisor", people["supervisor"])
        await page.click("text=督办事项")
        queued = page.locator("[data-test=supervision-extensions] tr", has_text=ELEVATOR)
        await expect(queued).to_contain_text("需协调电梯厂家更换主板")
        await shoot(page, "14-督办事项")
        await queued.locator("[data-test=queue-approve]").click()
        await expect(queued).to_have_count(0)
        await page.goto(case_url)
        await expect(page.locator(".el-timeline")).to_contain_text("延期批准")
        await log_out(page)

        # -- 承办单位: replies; cannot open another department's case -------------------------
        await log_in(page, base, "xf.handler", "Minyi-2026x")
        await page.goto(case_url)
        await page.click("[data-test=open-reply]")
        await page.fill(
            "textarea[name=reply-text]", "已督促物业联系厂家更换电梯主板，3号楼电梯已恢复运行。"
        )
        files = page.locator("[data-test=reply-upload] input[type=file]")
        await files.set_input_files(
            {"name": "维修记录.exe", "mimeType": "application/octet-stream", "buffer": b"MZ" * 50}
        )
        await expect(page.locator(".el-message--error")).to_contain_text("仅支持图片、PDF")
        await files.set_input_files(
            {"name": "维修记录.png", "mimeType": "image/png", "buffer": REPAIR_PHOTO}
        )
        await expect(page.locator(".el-dialog .el-tag", has_text="维修记录.png")).to_be_visible()
        await page.click("[data-test=send-reply]")
        await expect(page.locator(".el-timeline")).to_contain_text("答复")
        replied_file = page.locator("[data-test=reply-files] a", has_text="维修记录.png")
        async with page.expect_download() as download_info:
            await replied_file.click()
        photo = Path(await (await download_info.value).path())
        assert await asyncio.to_thread(photo.read_bytes) == REPAIR_PHOTO
        # 通知订阅: the department's own; a webhook to this machine is refused at the field.
        await page.click("text=通知订阅")
        form = page.locator("[data-test=subscription-form]")
        await form.locator("input[name=address]").fill("http://127.0.0.1:1/hook")
        await form.locator("button[type=submit]").click()
        await expect(form.locator(".el-form-item__error")).to_contain_text("不允许的网址")
        await form.get_by_text("电子邮件", exact=True).click()
        await form.locator("input[name=address]").fill("xingfu@example.gov.cn")
        await form.locator("button[type=submit]").click()
        subscribed = page.locator("[data-test=subscriptions] tr", has_text="xingfu@example.gov.cn")
        await expect(subscribed).to_contain_text("有效")
        await shoot(page, "15-通知订阅")
        await subscribed.locator("button:has-text('取消')").click()
        await expect(subscribed).to_contain_text("已停用")
        bus_stop = await office.call(
            "POST",
            "/api/intake/opinions",
            json={
                "title": "光明路公交站台破损",
                "content": "光明路公交站台顶棚破损，候车乘客淋雨。",
                "channel": "走访",
                "submitter": {"kind": "群众", "name": "赵先生"},
                "location": {"district": "示范区", "street": "光明街道"},
            },
        )
        other_case = bus_stop.json()["id"]

        async def routed_to_transport() -> bool:
            return (
                await admin.call("GET", f"/api/routing/decisions/{other_case}")
            ).status_code == 200

        await wait_for(routed_to_transport, "the bus stop opinion routed")
        await page.goto(f"{base}/cases/{other_case}")
        await expect(page.locator("[data-test=forbidden]")).to_contain_text("403")
        await shoot(page, "08-无权访问")
        await log_out(page)

        # -- 公众: the submitter rates through the link ----------------------------------------
        def feedback_link() -> str | None:
            found = [e for e in sink.of_type("feedback.requested") if e.event["subject"] == case_id]
            return found[0].event["data"]["feedback_url"] if found else None

        link = await wait_for(feedback_link, "the feedback link", within=60)
        await page.goto(f"{base}/feedback/{link.rsplit('/', 1)[1]}")
        await expect(page.locator("h3")).to_contain_text(ELEVATOR)
        await page.get_by_text("满意", exact=True).click()
        await shoot(page, "09-评价")
        await page.click("[data-test=send-rating]")
        await expect(page.locator("[data-test=rated]")).to_contain_text("感谢您的评价")

        # -- 督查: the KPI cards and charts moved; the audit log names everyone ----------------
        await log_in(page, base, "supervisor", people["supervisor"])
        await choose(page, "[data-test=unit]", "幸福街道办事处")
        await expect(page.locator("[data-shown=xingfu-street]")).to_be_visible()
        card = page.locator("[data-test=kpi-timely_sign_rate]")
        await expect(card).not_to_have_text(before, timeout=30_000)
        assert "100.0%" in await card.inner_text()
        await shoot(page, "10-督查督办")
        await page.click("text=审计日志")
        audit = page.locator("[data-test=audit]")
        for who, action in [
            ("李文静", "意见登记"),
            ("李文静", "批量导入"),
            ("陈思远", "分类交办"),
            ("吴晓峰", "签收"),
            ("吴晓峰", "查看联系方式"),
            ("吴晓峰", "申请延期"),
            ("赵明", "延期审批"),
            ("吴晓峰", "上传答复附件"),
            ("吴晓峰", "答复"),
            ("吴晓峰", "订阅通知"),
        ]:
            await expect(
                audit.locator("tr", has_text=who).filter(has_text=action).first
            ).to_be_visible()
        await shoot(page, "11-审计日志")
        await log_out(page)

        # -- 系统管理: the router's versions and the holiday calendar of this year and next -------
        await log_in(page, base, "admin", people["admin"])
        await page.click("text=单位管理")
        units = page.locator("[data-test=unit-form]")
        await units.locator("input[name=unit-code]").fill("坏编码")
        await units.locator("input[name=unit-name]").fill("示范区信访局")
        await choose(page, "[data-test=unit-form] .el-select", "承办单位")
        await units.locator("button[type=submit]").click()
        await expect(units.locator(".el-form-item__error")).to_be_visible()
        await units.locator("input[name=unit-code]").fill("petition")
        await units.locator("button[type=submit]").click()
        await expect(page.locator("[data-test=units] tr", has_text="示范区信访局")).to_be_visible()
        await shoot(page, "16-单位管理")
        await page.click("text=系统管理")
        await expect(page.locator("[data-test=models]")).to_be_visible()
        await page.click("text=目录与分派规则")
        rule = page.locator("[data-test=rules] tr", has_text="城乡建设").filter(has_text="全区")
        await rule.locator("button:has-text('修改')").click()
        await page.click("[data-test=rule-form] button[type=submit]")
        await expect(
            page.locator(".el-message--success", has_text="已保存「城乡建设」")
        ).to_be_visible()
        await shoot(page, "17-目录与分派规则")
        await page.click("text=节假日安排")
        this_year = utcnow().astimezone(BEIJING).year
        await expect(page.locator("[data-test=calendar-years]")).to_contain_text(f"{this_year}年")
        await shoot(page, "13-系统管理")
        # The administrator's own actions are in the audit log too.
        await page.click("text=审计日志")
        for action in ("保存单位 petition", "修改分派规则"):
            await expect(
                page.locator("[data-test=audit] tr", has_text="周敏").filter(has_text=action).first
            ).to_be_visible()
        await log_out(page)

        # -- Five wrong passwords lock the account ---------------------------------------------
        for _ in range(5):
            await page.fill("input[name=login]", "sun.qi")
            await page.fill("input[name=password]", "not-the-password-1")
            await page.click("button:has-text('登录')")
            await expect(page.locator("[data-test=login-error]")).to_be_visible()
        await expect(page.locator("[data-test=login-error]")).to_contain_text("已锁定")
        await shoot(page, "12-账号锁定")
        await page.fill("input[name=password]", "Minyi-2026x")
        await page.click("button:has-text('登录')")
        await expect(page.locator("[data-test=login-error]")).to_contain_text("已锁定")
        gone = await office.call("DELETE", f"/api/notification/subscriptions/{hook.json()['id']}")
        assert gone.status_code == 204
