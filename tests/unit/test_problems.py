"""Errors are RFC 9457 problem+json, including oversize bodies and crashes."""

from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure

from shared import problems
from shared.service import BodySizeLimit, service_app
from shared.settings import Settings
from shared.store import VersionConflict


class Body(BaseModel):
    title: str = Field(max_length=5)
    count: int


def app() -> FastAPI:
    made = FastAPI()
    problems.install(made)
    made.add_middleware(BodySizeLimit, limit=100)

    @made.post("/things")
    async def create(body: Body) -> Body:
        return body

    @made.get("/busy")
    async def busy() -> None:
        raise OperationFailure("database is locked (5) (SQLITE_BUSY)", code=1)

    @made.get("/store-bug")
    async def store_bug() -> None:
        raise OperationFailure("unknown operator: $foo", code=2)

    @made.get("/boom")
    async def boom() -> None:
        raise RuntimeError("bug")

    return made


def test_validation_errors_name_every_field() -> None:
    response = TestClient(app()).post("/things", json={"title": "too long title"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert {e["field"] for e in body["errors"]} == {"title", "count"}
    assert "title" in body["detail"] and "count" in body["detail"]


def test_oversize_body_is_413_with_or_without_content_length() -> None:
    client = TestClient(app())
    declared = client.post(
        "/things", content=b"x" * 200, headers={"content-type": "application/json"}
    )
    streamed = client.post(
        "/things",
        content=iter([b"x" * 60, b"x" * 60]),
        headers={"content-type": "application/json"},
    )
    assert declared.status_code == streamed.status_code == 413
    assert streamed.headers["content-type"] == "application/problem+json"


def test_unknown_route_and_crash_are_problems_too() -> None:
    client = TestClient(app(), raise_server_exceptions=False)
    assert client.get("/nowhere").headers["content-type"] == "application/problem+json"
    crash = client.get("/boom")
    assert crash.status_code == 500
    assert crash.json()["title"].startswith("服务器内部错误")


def test_unreachable_database_is_503_with_retry_after() -> None:
    from pymongo.errors import ServerSelectionTimeoutError

    made = app()

    @made.get("/down")
    async def down() -> None:
        raise ServerSelectionTimeoutError("no servers")

    response = TestClient(made).get("/down")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.headers["content-type"] == "application/problem+json"


def test_a_busy_store_is_503_with_retry_after_and_other_store_errors_are_500() -> None:
    client = TestClient(app(), raise_server_exceptions=False)
    busy = client.get("/busy")
    assert busy.status_code == 503
    assert busy.headers["retry-after"] == "2"
    assert busy.headers["content-type"] == "application/problem+json"
    assert "busy" in busy.json()["detail"]
    bug = client.get("/store-bug")
    assert bug.status_code == 500
    assert bug.headers["content-type"] == "application/problem+json"


def test_field_messages_are_chinese_for_people_with_the_english_beside() -> None:
    client = TestClient(app())
    body = client.post("/things", json={"title": "far too long"}).json()
    by_field = {e["field"]: e for e in body["errors"]}
    assert by_field["title"]["message"] == "最多 5 个字"
    assert by_field["title"]["message_en"] == "String should have at most 5 characters"
    assert by_field["count"]["message"] == "必填"
    wrong = client.post("/things", json={"title": "ok", "count": "many"}).json()
    assert wrong["errors"][0]["message"] == "应为整数"


def test_a_write_others_keep_winning_is_503_busy_with_retry_after() -> None:
    router = APIRouter()

    @router.post("/contended")
    async def contended() -> None:
        raise VersionConflict("Case x changed concurrently")

    mongo: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(connect=False)
    made = service_app("test", "", Settings(), None, mongo, [router])
    response = TestClient(made).post("/contended")  # no lifespan: nothing to connect to
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1"
