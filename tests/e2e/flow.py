"""Steps of an opinion's life through the public HTTP APIs, shared by the end-to-end tests."""

import uuid
from collections import Counter
from typing import Any

import httpx

from tools.demo import WebhookSink, wait_for

from .conftest import Keys, System

OPINION: dict[str, Any] = {
    "title": "和平路公交站台破损",
    "content": "和平路公交站台顶棚破损漏雨，候车乘客淋雨，希望交通部门尽快维修。",
    "channel": "走访",
    "submitter": {"kind": "代表", "name": "李代表", "phone": "13912345678"},
    "location": {"district": "示范区", "street": "和平街道"},
}

LIFECYCLE = ["登记", "交办", "签收", "答复", "回访", "评价", "办结"]


async def submit(http: httpx.AsyncClient, system: System, key: str, **changes: Any) -> str:
    """Register OPINION (with ``changes``). Each goes to a street of its own: the same text
    twice in one street within 30 days would be linked as support (附议), not a new case."""
    street = f"和平街道{uuid.uuid4().hex[:8]}"
    location = {**OPINION["location"], "street": street}
    response = await http.post(
        f"{system.url('intake')}/opinions",
        headers=Keys.header(key),
        json={**OPINION, "location": location, **changes},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def case_of(
    http: httpx.AsyncClient, system: System, key: str, opinion_id: str, status: str | None = None
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        r = await http.get(f"{system.url('followup')}/cases/{opinion_id}", headers=Keys.header(key))
        if r.status_code != 200:
            return None
        body: dict[str, Any] = r.json()
        return body if status is None or body["status"] == status else None

    return await wait_for(check, f"case {opinion_id} ({status or 'any status'})", within=60)


def lead_of(case: dict[str, Any]) -> str | None:
    """The lead department (主办) still holding the case: not returned (退回), not withdrawn
    (改派)."""
    return next(
        (
            code
            for code, a in case["assignments"].items()
            if a["role"] == "lead" and a["status"] not in ("returned", "withdrawn")
        ),
        None,
    )


async def signed_by_lead(
    http: httpx.AsyncClient, system: System, keys: Keys, opinion_id: str
) -> tuple[str, dict[str, str]]:
    """The lead department signs (签收) the opinion's case: its code and its key's headers."""
    department = lead_of(await case_of(http, system, keys.office, opinion_id))
    assert department is not None, f"case {opinion_id} has no working lead"
    worker = Keys.header(keys.departments[department])
    signed = await http.post(f"{system.url('followup')}/cases/{opinion_id}/sign", headers=worker)
    assert signed.status_code == 200, signed.text
    return department, worker


async def work_and_rate(
    http: httpx.AsyncClient, system: System, keys: Keys, sink: WebhookSink, opinion_id: str
) -> dict[str, Any]:
    """The lead department signs and replies; the submitter rates through the webhook's link."""
    department = lead_of(await case_of(http, system, keys.office, opinion_id))
    assert department is not None, f"case {opinion_id} has no working lead"
    worker = Keys.header(keys.departments[department])
    case_url = f"{system.url('followup')}/cases/{opinion_id}"
    assert (await http.post(f"{case_url}/sign", headers=worker)).status_code == 200
    reply = {"result": "已解决", "text": "已安排维修，三日内完成。"}
    response = await http.post(f"{case_url}/reply", headers=worker, json=reply)
    assert response.status_code == 200, response.text

    def link() -> str | None:
        found = [r for r in sink.of_type("feedback.requested") if r.event["subject"] == opinion_id]
        return found[0].event["data"]["feedback_url"] if found else None

    feedback_url = await wait_for(link, "the feedback link", within=60)
    response = await http.post(feedback_url, json={"rating": "满意", "comment": "很好"})
    assert response.status_code == 200, response.text
    return await case_of(http, system, keys.office, opinion_id, status="closed")


async def delivered_log(
    http: httpx.AsyncClient, system: System, keys: Keys, opinion_id: str, expected: int
) -> list[dict[str, Any]]:
    """The notification service's delivery log for the opinion, once it has ``expected`` rows."""

    async def check() -> list[dict[str, Any]] | None:
        r = await http.get(
            f"{system.url('notification')}/deliveries",
            params={"opinion_id": opinion_id},
            headers=Keys.header(keys.office),
        )
        rows: list[dict[str, Any]] = r.json()
        done = [row for row in rows if row["status"] == "delivered"]
        return rows if len(done) >= expected else None

    return await wait_for(check, f"{expected} deliveries for {opinion_id}", within=60)


def webhook_types(sink: WebhookSink, opinion_id: str) -> Counter[str]:
    """Event types the sink received for the opinion, once per delivery id: receivers drop a
    re-sent delivery (one whose first answer came too late, under load), as they are told to."""
    mine = {r.delivery_id: r for r in sink.received if r.event["subject"] == opinion_id}
    return Counter(r.event["type"] for r in mine.values())


EXPECTED_WEBHOOKS = Counter(
    f"minyi.{name}.v1"
    for name in (
        "opinion.received",
        "opinion.assigned",
        "assignment.signed",
        "assignment.replied",
        "feedback.requested",
        "feedback.received",
        "case.closed",
    )
)
