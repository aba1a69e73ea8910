"""Property-based fuzzing of every HTTP API from its own OpenAPI document (schemathesis):
no request may cause a server error, and every 4xx answer is problem+json.

Bounded for `make test` (MINYI_FUZZ_EXAMPLES per operation, default 10); `make fuzz` runs
the same with many more examples."""

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import Case
from schemathesis.core.result import Ok

from shared import auth
from shared.settings import SERVICES, Settings
from shared.store import mongo_client

from .conftest import Keys, System

EXAMPLES = int(os.environ.get("MINYI_FUZZ_EXAMPLES", "10"))


@pytest.fixture(scope="session")
async def admin_key(settings: Settings) -> str:
    client = mongo_client(settings)
    db = client[settings.database(auth.AUTH_DB)]
    key = await auth.create_key(db, auth.Role.ADMIN, "fuzz", "模糊测试")
    await client.close()
    return key


def problems_in(case: Case, key: str, statuses: list[int]) -> list[str]:
    response = case.call(headers=Keys.header(key), timeout=30)
    statuses.append(response.status_code)
    where = f"{case.method} {case.formatted_path} {case.query or ''} → {response.status_code}"
    if response.status_code >= 500:
        return [f"{where}: {response.text[:300]}"]
    content_type = response.headers.get("content-type", [""])[0]
    if 400 <= response.status_code < 500 and content_type != "application/problem+json":
        return [f"{where}: not problem+json ({content_type})"]
    return []


@pytest.mark.parametrize("service", SERVICES)
def test_api_never_fails_and_answers_problems(system: System, admin_key: str, service: str) -> None:
    schema = schemathesis.openapi.from_url(f"{system.url(service)}/openapi.json")
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
            found.extend(problems_in(case, admin_key, statuses))

        fuzz()
    assert found == [], "\n".join(dict.fromkeys(found))
    assert len(statuses) >= len(operations)  # every operation was called at least once
