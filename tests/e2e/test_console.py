"""The console as a person meets it over HTTP: login, lockout, CSRF, the person's identity
reaching the services, audit of every action, logout and administrators' accounts."""

import httpx
import pytest

from services.console.api import COOKIE
from shared.settings import Settings
from tools.demo import seed_people

from .conftest import System
from .console_client import Person
from .flow import OPINION


@pytest.fixture(scope="module")
async def people(system: System, settings: Settings) -> dict[str, str]:
    return await seed_people(settings, {})


async def test_login_sets_a_secure_httponly_strict_cookie(
    system: System, people: dict[str, str]
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        clerk = Person(http, system.url("console"))
        response = await clerk.login("clerk", people["clerk"])
        assert response.status_code == 200, response.text
        cookie = response.headers["set-cookie"].lower()
        assert f"{COOKIE}=" in cookie
        assert {"httponly", "secure", "samesite=strict"} <= {p.strip() for p in cookie.split(";")}
        assert clerk.me["role"] == "office" and clerk.me["unit"] == "cppcc-office"
        me = await clerk.call("GET", "/console/me")
        assert me.status_code == 200 and me.json()["name"] == "李文静"


async def test_wrong_passwords_lock_the_account_and_say_so_in_chinese(
    system: System, people: dict[str, str]
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        editor = Person(http, system.url("console"))
        answers = [await editor.login("editor", "wrong-password-1") for _ in range(5)]
        assert [a.status_code for a in answers] == [401, 401, 401, 401, 423]
        assert answers[0].json()["detail"] == "用户名或密码错误"
        assert "已锁定" in answers[4].json()["detail"]
        assert answers[4].headers["content-type"] == "application/problem+json"
        # Locked: the right password is refused too, until an administrator unlocks.
        assert (await editor.login("editor", people["editor"])).status_code == 423
        admin = Person(http, system.url("console"))
        assert (await admin.login("admin", people["admin"])).status_code == 200
        unlocked = await admin.call("PATCH", "/console/people/editor", json={"unlock": True})
        assert unlocked.status_code == 200 and unlocked.json()["locked"] is False
        assert (await editor.login("editor", people["editor"])).status_code == 200
        # An unknown login gets the same answer as a wrong password.
        nobody = await Person(http, system.url("console")).login("nobody", "whatever-123")
        assert nobody.status_code == 401 and nobody.json()["detail"] == "用户名或密码错误"


async def test_the_person_acts_on_the_services_and_the_audit_log_names_them(
    system: System, people: dict[str, str]
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        clerk = Person(http, system.url("console"))
        await clerk.login("clerk", people["clerk"])
        no_csrf = await http.post(
            f"{system.url('console')}/api/intake/opinions",
            json=OPINION,
            headers={"Cookie": f"{COOKIE}={clerk.cookie}"},
        )
        assert no_csrf.status_code == 403 and "CSRF" in no_csrf.json()["detail"]
        created = await clerk.call("POST", "/api/intake/opinions", json=OPINION)
        assert created.status_code == 201, created.text
        opinion_id = created.json()["id"]
        # The service answered as the clerk's office: the opinion is the office's own.
        read = await clerk.call("GET", f"/api/intake/opinions/{opinion_id}")
        assert read.status_code == 200 and read.json()["office_id"] == "cppcc-office"
        bad = await clerk.call("POST", "/api/intake/opinions", json={"title": ""})
        assert bad.status_code == 422
        assert {"title", "content", "channel"} <= {e["field"] for e in bad.json()["errors"]}

        supervisor = Person(http, system.url("console"))
        await supervisor.login("supervisor", people["supervisor"])
        entries = (
            await supervisor.call("GET", "/console/audit", params={"person": "clerk"})
        ).json()
        actions = [(e["action"], e["outcome"], e["target"]) for e in entries]
        assert ("意见登记", "ok", None) in actions
        assert ("意见登记", "failed", None) in actions
        assert ("登录", "ok", None) in actions
        assert all(e["name"] == "李文静" and e["unit_name"] == "区政协办公室" for e in entries)
        (registered,) = [e for e in entries if e["action"] == "意见登记" and e["outcome"] == "ok"]
        assert registered["request"] == "POST /api/intake/opinions" and registered["status"] == 201
        # Offices do not read the audit log.
        assert (await clerk.call("GET", "/console/audit")).status_code == 403


async def test_logout_ends_the_session_and_its_service_key(
    system: System, people: dict[str, str]
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        handler = Person(http, system.url("console"))
        await handler.login("handler", people["handler"])
        assert (await handler.call("GET", "/api/followup/inbox")).status_code == 200
        assert (await handler.call("POST", "/console/logout")).status_code == 200
        assert (await handler.call("GET", "/console/me")).status_code == 401
        # Without a session the console passes the request on without credentials.
        assert (await handler.call("GET", "/api/followup/inbox")).status_code == 401


async def test_administrators_manage_accounts_with_field_errors_in_chinese(
    system: System, people: dict[str, str]
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        admin = Person(http, system.url("console"))
        await admin.login("admin", people["admin"])
        person = {"login": "wang.li", "name": "王立", "unit": "ecology", "roles": ["department"]}
        weak = await admin.call("POST", "/console/people", json={**person, "password": "short"})
        assert weak.status_code == 422
        assert weak.json()["errors"] == [{"field": "password", "message": "密码至少 10 位"}]
        wrong_role = await admin.call(
            "POST",
            "/console/people",
            json={**person, "roles": ["supervisor"], "password": "Ecology-2026x"},
        )
        assert wrong_role.status_code == 422 and wrong_role.json()["errors"][0]["field"] == "roles"
        made = await admin.call(
            "POST", "/console/people", json={**person, "password": "Ecology-2026x"}
        )
        assert made.status_code == 201, made.text
        again = await admin.call(
            "POST", "/console/people", json={**person, "password": "Ecology-2026x"}
        )
        assert again.status_code == 409
        newcomer = Person(http, system.url("console"))
        assert (await newcomer.login("wang.li", "Ecology-2026x")).status_code == 200
        assert newcomer.me["unit"] == "ecology" and newcomer.me["role"] == "department"
        # Disabled: the open session ends at its next request.
        off = await admin.call("PATCH", "/console/people/wang.li", json={"disabled": True})
        assert off.status_code == 200 and off.json()["disabled"] is True
        assert (await newcomer.call("GET", "/console/me")).status_code == 401
        # Only administrators manage people.
        assert (await newcomer.call("GET", "/console/people")).status_code == 401
        clerk = Person(http, system.url("console"))
        await clerk.login("clerk", people["clerk"])
        assert (await clerk.call("GET", "/console/people")).status_code == 403


async def test_changing_the_password(system: System, people: dict[str, str]) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        supervisor = Person(http, system.url("console"))
        await supervisor.login("supervisor", people["supervisor"])
        wrong = await supervisor.call(
            "POST",
            "/console/password",
            json={"old_password": "nope", "new_password": "Another-2026x"},
        )
        assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "old_password"
        changed = await supervisor.call(
            "POST",
            "/console/password",
            json={"old_password": people["supervisor"], "new_password": "Another-2026x"},
        )
        assert changed.status_code == 200
        again = Person(http, system.url("console"))
        assert (await again.login("supervisor", people["supervisor"])).status_code == 401
        assert (await again.login("supervisor", "Another-2026x")).status_code == 200
        people["supervisor"] = "Another-2026x"
