"""Personal data (个人信息): no full phone or ID number in any event, log line or webhook of
the whole e2e run. Runs last (see conftest): it scans what every test before it produced,
after walking one opinion that carries phone and ID numbers in every free-text field."""

import json
import random
import re

import httpx

from tests.integration.notification_servers import free_port
from tools.demo import WebhookSink, wait_for

from .conftest import Keys, System, Traffic
from .flow import case_of, lead_of, submit

# As a person would write them: mobile numbers (optionally +86) and 18-digit ID numbers.
MOBILE = re.compile(r"(?<![0-9A-Za-z])(\+?86)?1[3-9]\d{9}(?![0-9A-Za-z])")
ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")


def _phone() -> str:
    return f"139{random.randrange(10**8):08d}"


def _subject(body: bytes) -> object:
    """The event's subject; None for the malformed messages some tests publish on purpose."""
    try:
        return json.loads(body).get("subject")
    except (ValueError, AttributeError):
        return None


def _found(text: str) -> list[str]:
    return [m[0] for m in MOBILE.finditer(text)] + [m[0] for m in ID_NUMBER.finditer(text)]


async def test_no_full_phone_or_id_number_in_events_logs_or_webhooks(
    system: System, keys: Keys, sink: WebhookSink, traffic: Traffic
) -> None:
    contact, in_text, in_reply, in_comment = _phone(), _phone(), _phone(), _phone()
    id_number = f"110101199003{random.randrange(10**5):05d}X"
    followup = system.url("followup")
    department_sink = WebhookSink(free_port())
    async with department_sink.running(), httpx.AsyncClient(timeout=10) as http:
        opinion_id = await submit(
            http,
            system,
            keys.office,
            content=f"站台顶棚漏雨。联系电话 {in_text}，身份证号 {id_number}，请尽快维修。",
            submitter={"kind": "群众", "name": "赵先生", "phone": f"+86{contact}"},
        )
        department = lead_of(await case_of(http, system, keys.office, opinion_id))
        assert department is not None
        worker = Keys.header(keys.departments[department])
        hooked = await http.post(
            f"{system.url('notification')}/subscriptions/webhooks",
            headers=worker,
            json={"url": department_sink.url},
        )
        assert hooked.status_code == 201, hooked.text
        case_url = f"{followup}/cases/{opinion_id}"
        assert (await http.post(f"{case_url}/sign", headers=worker)).status_code == 200
        reply = {"result": "已解决", "text": f"已维修，如有问题请拨打 {in_reply}。"}
        assert (await http.post(f"{case_url}/reply", headers=worker, json=reply)).is_success

        def link() -> str | None:
            found = [
                r for r in sink.of_type("feedback.requested") if r.event["subject"] == opinion_id
            ]
            return found[0].event["data"]["feedback_url"] if found else None

        rating = {"rating": "满意", "comment": f"修好了，我的电话 {in_comment}"}
        rated = await http.post(await wait_for(link, "the feedback link"), json=rating)
        assert rated.status_code == 200, rated.text
        await case_of(http, system, keys.office, opinion_id, status="closed")

        def closing_seen() -> bool:
            return any(
                _subject(body) == opinion_id and b"case.closed" in body for body in traffic.events
            )

        await wait_for(closing_seen, "the closing on the captured exchange")
        await wait_for(
            lambda: [r for r in department_sink.received if r.event["subject"] == opinion_id],
            "the department's webhook",
        )
        await http.delete(
            f"{system.url('notification')}/subscriptions/{hooked.json()['id']}", headers=worker
        )

    mine = [body.decode() for body in traffic.events if _subject(body) == opinion_id]
    # The scan sees this opinion's texts, masked: it is looking at the right stream.
    assert any(f"{in_text[:3]}****{in_text[-4:]}" in body for body in mine)
    assert any(f"110101********{id_number[-4:]}" in body for body in mine)
    assert any(f"{in_reply[:3]}****{in_reply[-4:]}" in body for body in mine)
    webhooks = {
        f"webhook {r.delivery_id}": json.dumps(r.event, ensure_ascii=False)
        for r in [*sink.received, *department_sink.received]
    }
    assert any(opinion_id in text for text in webhooks.values())
    events = {f"event {n}": body.decode(errors="replace") for n, body in enumerate(traffic.events)}
    logs = {str(path): text for path, text in traffic.log_lines().items()}
    # Every service wrote its log during the run, and all of it is scanned.
    assert {path.rsplit("/", 1)[1] for path in logs} >= {
        f"{service}.log" for service in ("intake", "routing", "followup", "notification")
    }

    leaks = {
        where: found
        for where, text in {**events, **webhooks, **logs}.items()
        if (found := _found(text))
    }
    assert leaks == {}
    for secret in (contact, in_text, in_reply, in_comment, id_number):
        assert all(secret not in text for text in [*events.values(), *webhooks.values()])
        assert all(secret not in text for text in logs.values())
