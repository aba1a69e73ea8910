"""One opinion's whole life through four service processes, and crashes along the way."""

import asyncio
from datetime import datetime

import httpx

from tools.demo import WebhookSink, wait_for

from .conftest import LOGS, Keys, System
from .flow import (
    EXPECTED_WEBHOOKS,
    LIFECYCLE,
    case_of,
    delivered_log,
    submit,
    webhook_types,
    work_and_rate,
)


async def test_opinion_is_routed_answered_rated_and_closed(
    system: System, keys: Keys, sink: WebhookSink
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        opinion_id = await submit(http, system, keys.office)
        closed = await work_and_rate(http, system, keys, sink, opinion_id)
        log = await delivered_log(http, system, keys, opinion_id, len(EXPECTED_WEBHOOKS))

    assert closed["status"] == "closed"
    assert closed["rating"] == "满意"
    assert closed["assignments"]["transport"]["result"] == "已解决"
    assert [step["step"] for step in closed["timeline"]] == LIFECYCLE
    # As instants: an ISO text of a whole second ("…:42Z") sorts after "…:42.385Z".
    times = [datetime.fromisoformat(step["at"]) for step in closed["timeline"]]
    assert times == sorted(times)
    # Every event addressed to the office reached its webhook exactly once, correctly signed.
    assert webhook_types(sink, opinion_id) == EXPECTED_WEBHOOKS
    mine = [r for r in sink.received if r.event["subject"] == opinion_id]
    assert all(r.valid_signature for r in mine)
    assert len({r.delivery_id for r in mine}) == len(mine) == len(log)
    replied = [r for r in mine if r.event["type"] == "minyi.assignment.replied.v1"]
    assert replied[0].event["data"]["text"] == "已安排维修，三日内完成。"
    assert "13912345678" not in str([r.event for r in mine])
    # The single-use feedback token is a credential: the access log shows the path masked.
    (requested,) = [r for r in mine if r.event["type"] == "minyi.feedback.requested.v1"]
    token = requested.event["data"]["feedback_url"].rsplit("/", 1)[1]
    followup_log = (LOGS / "followup.log").read_text(encoding="utf-8")
    assert "POST /feedback/*** HTTP/1.1" in followup_log
    assert token not in followup_log


async def test_opinions_complete_when_services_are_killed_mid_flow(
    system: System, keys: Keys, sink: WebhookSink
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        # Followup and notification crash; opinions keep arriving and wait in their queues.
        system.kill("followup")
        system.kill("notification")
        waiting = [await submit(http, system, keys.office, title=f"站台破损 {i}") for i in range(5)]
        system.restart("followup")
        system.restart("notification")

        # Routing crashes in the middle of a burst.
        burst = await asyncio.gather(
            *(submit(http, system, keys.office, title=f"公交线路 {i}") for i in range(20))
        )
        await case_of(http, system, keys.office, burst[0])
        system.kill("routing")
        await asyncio.sleep(1)
        system.restart("routing")

        for opinion_id in [*waiting, *burst]:
            await work_and_rate(http, system, keys, sink, opinion_id)
        for opinion_id in [*waiting, *burst]:
            await delivered_log(http, system, keys, opinion_id, len(EXPECTED_WEBHOOKS))

    for opinion_id in [*waiting, *burst]:
        assert webhook_types(sink, opinion_id) == EXPECTED_WEBHOOKS, opinion_id
    assert all(r.valid_signature for r in sink.received)


async def test_other_office_and_department_cannot_see_the_case(system: System, keys: Keys) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        opinion_id = await submit(http, system, keys.office)
        await case_of(http, system, keys.office, opinion_id)
        case_url = f"{system.url('followup')}/cases/{opinion_id}"
        other_office = await http.get(case_url, headers=Keys.header(keys.other_office))
        wrong_department = Keys.header(keys.departments["education"])
        sign = await http.post(f"{case_url}/sign", headers=wrong_department)
        read = await http.get(case_url, headers=wrong_department)
        opinion = await http.get(
            f"{system.url('intake')}/opinions/{opinion_id}", headers=Keys.header(keys.other_office)
        )

    assert other_office.status_code == 404
    assert sign.status_code == 403
    assert sign.headers["content-type"] == "application/problem+json"
    # A department without an assignment is refused, not told "not found".
    assert read.status_code == 403
    assert opinion.status_code == 404


async def test_every_service_reports_health_readiness_and_metrics(
    system: System, keys: Keys
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        opinion_id = await submit(http, system, keys.office)
        await case_of(http, system, keys.office, opinion_id)
        for service in ("intake", "routing", "followup", "notification"):
            assert (await http.get(f"{system.url(service)}/health")).json()["status"] == "ok"
            assert (await http.get(f"{system.url(service)}/ready")).json()["status"] == "ready"
        handled = (
            'minyi_events_handled_total{outcome="ok",service="routing",'
            'type="minyi.opinion.received.v1"}'
        )

        # Routing counts the opinion once its handler is done, which is after the assignment
        # is out (专题 grouping comes last), so the case can be there a moment before.
        async def counted() -> str | None:
            text = (await http.get(f"{system.url('routing')}/metrics")).text
            return text if handled in text else None

        metrics = await wait_for(counted, "routing's handled opinion.received", within=30)
    assert "minyi_event_lag_seconds_bucket" in metrics
