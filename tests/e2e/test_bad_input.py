"""Bad input gets a clear problem+json answer; a malformed message is parked, not fatal."""

import asyncio
import json
from typing import Any

import aio_pika
import httpx
from typer.testing import CliRunner

from shared import auth, broker_admin
from shared.events import CE_CONTENT_TYPE
from shared.settings import Settings, get_settings
from shared.store import mongo_client
from tools.cli import app as cli
from tools.demo import WebhookSink, wait_for

from .conftest import Keys, System
from .flow import OPINION, case_of, submit


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"]
    return body


async def test_invalid_opinion_names_every_bad_field(system: System, keys: Keys) -> None:
    bad = {**OPINION, "content": "长" * 4001, "channel": "微信", "submitter": {"kind": "委员"}}
    del bad["title"]
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{system.url('intake')}/opinions", headers=Keys.header(keys.office), json=bad
        )
    body = problem(response, 422)
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"title", "content", "channel", "submitter.name"}


async def test_wrong_types_and_non_json_bodies_are_422(system: System, keys: Keys) -> None:
    url = f"{system.url('intake')}/opinions"
    async with httpx.AsyncClient() as http:
        typed = await http.post(url, headers=Keys.header(keys.office), json={**OPINION, "title": 5})
        garbage = await http.post(
            url,
            headers={**Keys.header(keys.office), "content-type": "application/json"},
            content=b"{not json",
        )
    assert {e["field"] for e in problem(typed, 422)["errors"]} == {"title"}
    problem(garbage, 422)


async def test_credentials_are_required_and_checked(system: System, keys: Keys) -> None:
    url = f"{system.url('intake')}/opinions"
    async with httpx.AsyncClient() as http:
        missing = await http.post(url, json=OPINION)
        unknown = await http.post(url, json=OPINION, headers=Keys.header("mny_offi_forged"))
        department = await http.post(
            url, json=OPINION, headers=Keys.header(keys.departments["housing"])
        )
        inbox = await http.get(f"{system.url('followup')}/inbox")
        health = await http.get(f"{system.url('followup')}/health")
    problem(missing, 401)
    problem(unknown, 401)
    problem(department, 403)
    problem(inbox, 401)
    assert health.status_code == 200


async def test_a_key_revoked_with_the_cli_is_refused(system: System, settings: Settings) -> None:
    client = mongo_client(settings)
    try:
        db = client[settings.database(auth.AUTH_DB)]
        key = await auth.create_key(db, auth.Role.OFFICE, "office-r", "将被吊销的办公室")
    finally:
        await client.close()
    key_id = auth.hash_key(key)[: auth.KEY_ID_LENGTH]
    get_settings.cache_clear()  # the CLI reads this run's databases from the environment
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli, list(args))

    listed = await asyncio.to_thread(run, "keys", "list")
    assert f"{key_id}  office     office-r" in listed.output and key not in listed.output
    revoked = await asyncio.to_thread(run, "keys", "revoke", key_id)
    assert revoked.exit_code == 0, revoked.output
    assert f"revoked {key_id} (office office-r" in revoked.output
    unknown = await asyncio.to_thread(run, "keys", "revoke", "mny_offi_never_made")
    assert unknown.exit_code == 2 and "0 keys match" in unknown.output
    listed = await asyncio.to_thread(run, "keys", "list")
    assert any(key_id in line and "revoked" in line for line in listed.output.splitlines())
    async with httpx.AsyncClient() as http:
        refused = await http.get(
            f"{system.url('intake')}/opinions/export", headers=Keys.header(key)
        )
    assert "revoked" in problem(refused, 401)["detail"]


async def test_oversized_body_is_413(system: System, keys: Keys) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{system.url('intake')}/opinions",
            headers={**Keys.header(keys.office), "content-type": "application/json"},
            content=b"x" * 2_000_000,
        )
    problem(response, 413)


async def test_forged_and_reused_feedback_links_are_refused(
    system: System, keys: Keys, sink: WebhookSink
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        forged = await http.post(
            f"{system.url('followup')}/feedback/b3BpbmlvbgAx.deadbeef", json={"rating": "满意"}
        )
        opinion_id = await submit(http, system, keys.office)
        case = await case_of(http, system, keys.office, opinion_id)
        worker = Keys.header(keys.departments[next(iter(case["assignments"]))])
        case_url = f"{system.url('followup')}/cases/{opinion_id}"
        early = await http.post(
            f"{case_url}/reply", headers=worker, json={"result": "已解决", "text": "已处理"}
        )
        first = await http.post(f"{case_url}/sign", headers=worker)
        again = await http.post(f"{case_url}/sign", headers=worker)
        await http.post(
            f"{case_url}/reply", headers=worker, json={"result": "已解决", "text": "已处理"}
        )
        token_url = await wait_for(
            lambda: [
                r.event["data"]["feedback_url"]
                for r in sink.of_type("feedback.requested")
                if r.event["subject"] == opinion_id
            ],
            "the feedback link",
        )
        token_url = token_url[0]
        rated = await http.post(token_url, json={"rating": "不满意", "comment": "没解决"})
        reused = await http.post(token_url, json={"rating": "满意"})
        bad_rating = await http.post(token_url, json={"rating": "还行"})

    problem(forged, 403)
    problem(early, 409)
    assert first.status_code == again.status_code == 200
    signed = [s for s in again.json()["timeline"] if s["step"] == "签收"]
    assert len(signed) == 1
    assert rated.status_code == 200
    problem(reused, 409)
    assert {e["field"] for e in problem(bad_rating, 422)["errors"]} == {"rating"}


async def test_malformed_messages_are_parked_with_a_reason(system: System, keys: Keys) -> None:
    settings = system.settings
    unknown = {
        "specversion": "1.0",
        "id": "evt-unknown",
        "source": "/test",
        "type": "minyi.nope.v1",
        "time": "2026-01-01T00:00:00Z",
        "subject": "x",
        "data": {},
    }
    url = f"amqp://guest:guest@{settings.amqp_host}:{settings.amqp_port}/{settings.amqp_vhost}"
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        events = await channel.get_exchange("minyi.events", ensure=False)
        for message_id, body in (
            ("evt-garbage", b"{not json"),
            ("evt-unknown", json.dumps(unknown).encode()),
        ):
            message = aio_pika.Message(
                body,
                message_id=message_id,
                content_type=CE_CONTENT_TYPE,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            await events.publish(message, routing_key="opinion.received")

    # The consumer keeps going: the next good opinion is routed.
    async with httpx.AsyncClient(timeout=10) as http:
        opinion_id = await submit(http, system, keys.office)
        await case_of(http, system, keys.office, opinion_id)

    async def both_parked() -> list[dict[str, Any]] | None:
        parked = await broker_admin.parked("routing", settings, 50)
        mine = [p for p in parked if p["message_id"] in {"evt-garbage", "evt-unknown"}]
        return mine if len(mine) == 2 else None

    parked = {p["message_id"]: p for p in await wait_for(both_parked, "two parked messages")}
    assert parked["evt-garbage"]["reason"].startswith("malformed event: ValidationError")
    assert "unknown event type 'minyi.nope.v1'" in parked["evt-unknown"]["reason"]
    assert parked["evt-garbage"]["routing_key"] == "opinion.received"
