"""Property-based fuzzing of every HTTP API from its own OpenAPI document (schemathesis):
no request may cause a server error, and every 4xx answer is problem+json.

Bounded for `make test` (MINYI_FUZZ_EXAMPLES per operation, default 10); `make fuzz` runs
the same with many more examples."""

import os

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import Case
from schemathesis.core.result import Ok

from services.console.adapters import Directory, Passwords
from services.console.api import COOKIE
from services.console.domain import Person, Unit, UnitKind
from shared import auth
from shared.settings import SERVICES, Settings
from shared.store import mongo_client

from .conftest import Keys, System
from .console_client import Person as Browser

EXAMPLES = int(os.environ.get("MINYI_FUZZ_EXAMPLES", "10"))


@pytest.fixture(scope="session")
async def admin_key(settings: Settings) -> str:
    client = mongo_client(settings)
    db = client[settings.database(auth.AUTH_DB)]
    key = await auth.create_key(db, auth.Role.ADMIN, "fuzz", "模糊测试")
    await client.close()
    return key


@pytest.fixture(scope="session")
async def console_admin(system: System, settings: Settings) -> dict[str, str]:
    """Headers of a console administrator's session (cookie and CSRF token)."""
    client = mongo_client(settings)
    password = "Fuzz-admin-2026"
    admin = Person(
        login="fuzz.admin",
        name="模糊测试",
        unit="admin",
        roles=[auth.Role.ADMIN],
        password_hash=Passwords().hash(password),
    )
    directory = Directory(client[settings.database("console")])
    await directory.save_unit(Unit(code="admin", name="系统管理", kind=UnitKind.STAFF))
    await directory.save_person(admin)
    await client.close()
    async with httpx.AsyncClient(timeout=10) as http:
        person = Browser(http, system.url("console"))
        assert (await person.login(admin.login, password)).status_code == 200
    return {"Cookie": f"{COOKIE}={person.cookie}", "X-CSRF-Token": person.csrf}


def problems_in(case: Case, headers: dict[str, str], statuses: list[int]) -> list[str]:
    response = case.call(headers=headers, timeout=30)
    statuses.append(response.status_code)
    where = f"{case.method} {case.formatted_path} {case.query or ''} → {response.status_code}"
    if response.status_code >= 500:
        return [f"{where}: {response.text[:300]}"]
    content_type = response.headers.get("content-type", [""])[0]
    if 400 <= response.status_code < 500 and content_type != "application/problem+json":
        return [f"{where}: not problem+json ({content_type})"]
    return []


@pytest.mark.parametrize("service", [*SERVICES, "console"])
def test_api_never_fails_and_answers_problems(
    system: System, admin_key: str, console_admin: dict[str, str], service: str
) -> None:
    # The console is fuzzed as a signed-in administrator; logging out would end the session.
    headers = console_admin if service == "console" else Keys.header(admin_key)
    schema = schemathesis.openapi.from_url(f"{system.url(service)}/openapi.json").exclude(
        path="/console/logout"
    )
    # The fuzzer may store any valid review rules (审核): later tests reply without review.
    rules = f"{system.url('followup')}/review/rules"
    review_rules = httpx.get(rules, headers=Keys.header(admin_key), timeout=10).json()
    found: list[str] = []
    statuses: list[int] = []
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert operations and len(operations) == len(results), "the OpenAPI document is invalid"
    for operation in operations:

        @hypothesis_settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def fuzz(case: Case) -> None:
            found.extend(problems_in(case, headers, statuses))

        fuzz()
    put_back = httpx.put(rules, headers=Keys.header(admin_key), json=review_rules, timeout=10)
    assert put_back.status_code == 200, put_back.text
    assert found == [], "\n".join(dict.fromkeys(found))
    assert len(statuses) >= len(operations)  # every operation was called at least once
