"""改派 and 退回 across the running services: staff reassign an opinion in routing and followup
ends the old department's assignment; a lead's return makes routing decide again, the new lead
works the case to its close, and a second return sends the opinion to routing's triage queue.

The opinions name 公交站台, which the demo directory's keyword rule sends to 交通运输 (lead:
transport) whatever model the session's routing has."""

from typing import Any

import httpx

from tools.demo import WebhookSink, wait_for

from .conftest import Keys, System
from .flow import case_of, lead_of, submit, work_and_rate

RETURN = {
    "reason_code": "not_our_duty",
    "responsible_unit": "区住建局",
    "evidence": "站台维修属市政设施管养, 不属于本局职责",
}
# What routing is told: the reason code's label and the evidence.
RETURN_REASON = "不属于本单位职责: 应由区住建局承办: 站台维修属市政设施管养, 不属于本局职责"


async def _case_when(
    http: httpx.AsyncClient, system: System, keys: Keys, opinion_id: str, what: str, check: Any
) -> dict[str, Any]:
    """The case (read by the submitting office) once ``check(case)`` holds."""

    async def ready() -> dict[str, Any] | None:
        case = await case_of(http, system, keys.office, opinion_id)
        return case if check(case) else None

    return await wait_for(ready, f"case {opinion_id}: {what}", within=90)


async def _return(
    http: httpx.AsyncClient, system: System, keys: Keys, opinion_id: str, department: str
) -> None:
    """申请退单 by the department, accepted by the supervisor (退单审核)."""
    case = f"{system.url('followup')}/cases/{opinion_id}"
    asked = await http.post(
        f"{case}/return", headers=Keys.header(keys.departments[department]), json=RETURN
    )
    assert asked.status_code == 200, asked.text
    assert asked.json()["assignments"][department]["return_claim"]["status"] == "pending"
    response = await http.post(
        f"{case}/return-review",
        headers=Keys.header(keys.supervisor),
        json={"department": department, "accept": True},
    )
    assert response.status_code == 200, response.text
    assert response.json()["assignments"][department]["status"] == "returned"


async def test_reassigned_opinion_ends_the_old_assignment(
    system: System, keys: Keys, editor_key: str
) -> None:
    followup, routing = system.url("followup"), system.url("routing")
    async with httpx.AsyncClient(timeout=30) as http:
        opinion_id = await submit(http, system, keys.office)
        await _case_when(
            http, system, keys, opinion_id, "transport leads", lambda c: lead_of(c) == "transport"
        )

        choice = {"category": "城乡建设", "lead": "housing", "co": []}
        response = await http.post(
            f"{routing}/decisions/{opinion_id}/reassign",
            headers=Keys.header(editor_key),
            json=choice,
        )
        assert response.status_code == 200, response.text
        assert response.json()["lead"] == "housing"

        case = await _case_when(
            http,
            system,
            keys,
            opinion_id,
            "transport withdrawn, housing assigned",
            lambda c: (
                c["assignments"]["transport"]["status"] == "withdrawn"
                and "housing" in c["assignments"]
            ),
        )
        assert lead_of(case) == "housing"
        assert case["assignments"]["housing"]["status"] == "assigned"
        assert "改派" in [t["step"] for t in case["timeline"]]

        transport = Keys.header(keys.departments["transport"])
        refused = await http.post(f"{followup}/cases/{opinion_id}/sign", headers=transport)
        assert refused.status_code == 409, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert "withdrawn" in refused.json()["detail"]
        inbox = (await http.get(f"{followup}/inbox", headers=transport)).json()
        assert opinion_id not in [item["id"] for item in inbox]
        housing = Keys.header(keys.departments["housing"])
        inbox = (await http.get(f"{followup}/inbox", headers=housing)).json()
        assert opinion_id in [item["id"] for item in inbox]
        # Soonest due first; ``limit`` keeps the first ones.
        assert [i["due_at"] for i in inbox] == sorted(i["due_at"] for i in inbox)
        first = await http.get(f"{followup}/inbox", headers=housing, params={"limit": 1})
        assert [i["due_at"] for i in first.json()] == [inbox[0]["due_at"]]
        zero = await http.get(f"{followup}/inbox", headers=housing, params={"limit": 0})
        assert zero.status_code == 422

        signed = await http.post(f"{followup}/cases/{opinion_id}/sign", headers=housing)
        assert signed.status_code == 200, signed.text
        assert signed.json()["assignments"]["housing"]["status"] == "signed"


async def test_returned_opinion_is_redecided_and_a_second_return_goes_to_triage(
    system: System, keys: Keys, sink: WebhookSink, editor_key: str
) -> None:
    routing = system.url("routing")
    editor = Keys.header(editor_key)
    async with httpx.AsyncClient(timeout=30) as http:
        first = await submit(http, system, keys.office)
        second = await submit(http, system, keys.office, title="幸福路公交站台缺少座椅")
        for opinion_id in (first, second):
            await _case_when(
                http,
                system,
                keys,
                opinion_id,
                "transport leads",
                lambda c: lead_of(c) == "transport",
            )
            await _return(http, system, keys, opinion_id, "transport")

        # Routing decides again without transport; followup adds the new lead to the case.
        new_leads: dict[str, str] = {}
        for opinion_id in (first, second):
            case = await _case_when(
                http,
                system,
                keys,
                opinion_id,
                "a new lead",
                lambda c: lead_of(c) not in (None, "transport"),
            )
            assert case["assignments"]["transport"]["status"] == "returned"
            lead = lead_of(case)
            assert lead is not None
            new_leads[opinion_id] = lead
            decision = (await http.get(f"{routing}/decisions/{opinion_id}", headers=editor)).json()
            assert decision["returns"] == {"transport": RETURN_REASON}
            assert decision["lead"] == new_leads[opinion_id]

        # The first: the new lead signs and replies, the submitter rates, the case closes.
        closed = await work_and_rate(http, system, keys, sink, first)
        assert closed["outcome"] == "满意"
        assert closed["assignments"][new_leads[first]]["status"] == "replied"
        assert closed["assignments"]["transport"]["status"] == "returned"
        steps = [t["step"] for t in closed["timeline"]]
        assert steps.count("交办") == 2 and "退回" in steps

        # The second is returned again: a person decides (人工分拣).
        await _return(http, system, keys, second, new_leads[second])

        async def queued() -> list[dict[str, Any]]:
            r = await http.get(f"{routing}/triage", headers=editor)
            assert r.status_code == 200, r.text
            return [item for item in r.json() if item["_id"] == second]

        [item] = await wait_for(queued, "the twice-returned opinion in triage", within=90)
        assert "退回" in item["reason"]
        case = await case_of(http, system, keys.office, second)
        assert lead_of(case) is None
        assert {a["status"] for a in case["assignments"].values()} == {"returned"}
