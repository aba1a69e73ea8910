"""Holes 7 and 8 of the security review, through the running services: members belong to an
office, and the feedback link is refused cleanly when malformed and reaches only the
registering office."""

import base64

import httpx

from tests.integration.notification_servers import free_port
from tools.demo import Received, WebhookSink, wait_for

from .conftest import Keys, System
from .flow import signed_by_lead, submit

MEMBER = {"name": "周委员", "kind": "委员", "sector": "经济界", "phone": "13600001111"}


async def test_hole_07_cross_office_members(system: System, keys: Keys) -> None:
    notification = f"{system.url('notification')}/subscriptions"
    office_a, office_b = Keys.header(keys.office), Keys.header(keys.other_office)
    async with httpx.AsyncClient(timeout=10) as http:
        enrolled = await http.post(f"{system.url('intake')}/members", headers=office_a, json=MEMBER)
        assert enrolled.status_code == 201, enrolled.text
        member = f"member:{enrolled.json()['id']}"
        mine = {"channel": "email", "address": "zhou@example.org", "recipient": member}

        async def subscribed() -> httpx.Response | None:
            # The member's office reaches notification as an event (member.enrolled).
            r = await http.post(notification, headers=office_a, json=mine)
            return r if r.status_code == 201 else None

        created = await wait_for(subscribed, "office A subscribing its member", within=30)
        subscription = created.json()["id"]
        asked = {"recipient": member}
        theirs = [
            await http.get(notification, headers=office_b, params=asked),
            await http.post(
                notification,
                headers=office_b,
                json={"channel": "webhook", "address": "https://b.example.org/", **asked},
            ),
            await http.delete(f"{notification}/{subscription}", headers=office_b, params=asked),
            await http.post(
                f"{notification}/{subscription}/enable", headers=office_b, params=asked
            ),
            await http.get(
                f"{system.url('notification')}/deliveries", headers=office_b, params=asked
            ),
            # A member nobody enrolled belongs to no office either.
            await http.get(notification, headers=office_a, params={"recipient": "member:nobody"}),
        ]
        own = await http.get(notification, headers=office_a, params=asked)
        member_of_b = await http.get(
            f"{system.url('intake')}/members/{enrolled.json()['id']}", headers=office_b
        )
        naming_it = await http.post(
            f"{system.url('intake')}/opinions",
            headers=office_b,
            json={
                "title": "借用他人委员",
                "content": "乙办公室冒用甲办公室的委员提交意见。",
                "channel": "走访",
                "submitter": {"kind": "委员", "name": "周委员"},
                "location": {"district": "示范区"},
                "member_id": enrolled.json()["id"],
            },
        )

    for answer in theirs:
        assert answer.status_code == 403, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
    # Office B changed nothing: office A's subscription is still there and active.
    assert [(s["id"], s["active"], s["address"]) for s in own.json()] == [
        (subscription, True, "zhou@example.org")
    ]
    assert member_of_b.status_code == 404
    assert naming_it.status_code == 422, naming_it.text
    assert [e["field"] for e in naming_it.json()["errors"]] == ["member_id"]


async def listen(http: httpx.AsyncClient, system: System, sink: WebhookSink, key: str) -> str:
    """Subscribe ``sink`` to every event the key's recipient gets; returns the subscription."""
    response = await http.post(
        f"{system.url('notification')}/subscriptions/webhooks",
        headers=Keys.header(key),
        json={"url": sink.url},
    )
    assert response.status_code == 201, response.text
    sink.secrets.append(response.json()["secret"])
    return str(response.json()["id"])


# A well-formed payload with a non-ASCII signature reaches compare_digest, which raised.
WELL_FORMED = base64.urlsafe_b64encode(b"01CASE.1.4102444800").decode().rstrip("=")
MALFORMED_TOKENS = [
    f"{WELL_FORMED}.签名",
    f"{WELL_FORMED}.ü" * 2,
    "ünïcode.签名",
    "abc",
    "a.b.c",
    "%00",
    "x" * 300,
    "Zm9v.",
    ".deadbeef",
]


async def test_hole_08_feedback_link_hygiene(system: System, keys: Keys) -> None:
    followup = system.url("followup")
    office_sink, supervisor_sink = WebhookSink(free_port()), WebhookSink(free_port())
    async with (
        office_sink.running(),
        supervisor_sink.running(),
        httpx.AsyncClient(timeout=10) as http,
    ):
        answers = [await http.get(f"{followup}/feedback/{t}") for t in MALFORMED_TOKENS]
        answers.append(await http.post(f"{followup}/feedback/ünï.签", json={"rating": "满意"}))
        listening = [
            (key, await listen(http, system, sink, key))
            for sink, key in ((office_sink, keys.office), (supervisor_sink, keys.supervisor))
        ]
        try:
            opinion_id = await submit(http, system, keys.office)
            _, worker = await signed_by_lead(http, system, keys, opinion_id)
            case_url = f"{followup}/cases/{opinion_id}"
            reply = {"result": "已解决", "text": "已修复。"}
            assert (await http.post(f"{case_url}/reply", headers=worker, json=reply)).is_success

            def seen(sink: WebhookSink, name: str) -> list[Received]:
                return [r for r in sink.of_type(name) if r.event["subject"] == opinion_id]

            [link] = await wait_for(lambda: seen(office_sink, "feedback.requested"), "the link")
            rated = await http.post(link.event["data"]["feedback_url"], json={"rating": "满意"})
            assert rated.status_code == 200, rated.text
            # The supervisor hears of everything else, up to the closing that the link led to.
            await wait_for(lambda: seen(supervisor_sink, "case.closed"), "the closing")
        finally:
            for key, subscription in listening:
                await http.delete(
                    f"{system.url('notification')}/subscriptions/{subscription}",
                    headers=Keys.header(key),
                )

    for answer in answers:
        assert answer.status_code == 403, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
    assert seen(supervisor_sink, "assignment.replied") != []
    assert seen(supervisor_sink, "feedback.requested") == []
