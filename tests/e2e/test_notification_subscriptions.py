"""Notification through the running service: a department's own webhook gets its assignment,
signed; bad subscriptions are refused with problem+json."""

import httpx

from tests.integration.notification_servers import free_port
from tools.demo import WebhookSink, wait_for

from .conftest import Keys, System
from .flow import submit


async def test_department_webhook_receives_its_assignment_signed(
    system: System, keys: Keys
) -> None:
    department = Keys.header(keys.departments["transport"])
    receiver = WebhookSink(free_port())
    async with receiver.running(), httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            f"{system.url('notification')}/subscriptions",
            headers=department,
            json={
                "channel": "webhook",
                "address": receiver.url,
                "event_names": ["opinion.assigned"],
            },
        )
        assert response.status_code == 201, response.text
        receiver.secrets.append(response.json()["secret"])
        opinion_id = await submit(http, system, keys.office)

        def mine() -> list[object]:
            return [r for r in receiver.received if r.event["subject"] == opinion_id]

        await wait_for(mine, "the department's assignment webhook", within=60)
        listed = await http.get(f"{system.url('notification')}/subscriptions", headers=department)

    [got] = [r for r in receiver.received if r.event["subject"] == opinion_id]
    assert got.valid_signature
    assert got.event["type"] == "minyi.opinion.assigned.v1"
    assert got.event["data"]["department"] == "transport"
    assert [s["recipient"] for s in listed.json()] == ["department:transport"]


async def test_bad_subscription_addresses_are_422(system: System, keys: Keys) -> None:
    url = f"{system.url('notification')}/subscriptions"
    office = Keys.header(keys.office)
    async with httpx.AsyncClient(timeout=10) as http:
        answers = [
            await http.post(url, headers=office, json={"channel": channel, "address": address})
            for channel, address in (
                ("webhook", "javascript:alert(1)"),
                ("email", "张三@"),
                ("sms", "1380000123"),
            )
        ]
    for answer in answers:
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in answer.json()["errors"]] == ["address"]
