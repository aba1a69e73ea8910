"""履职积分 as rules, through two followup replicas as real processes on the real broker and
store: a supervisor changes the rule table and a member's points read with the new rule; a
重点 mark earns the bonus once however often its event is delivered, and an unmark takes it
back; the lead author and each co-signer (联名) earn their own role's points for 提交, 立案,
采用 and 优秀; the refusals (a bad rule names its field, a stale version is 409, a department
may not change the rules, a mark needs a case with a member)."""

import asyncio
from datetime import datetime
from typing import Any

import httpx

from shared.clock import beijing_year, utcnow
from shared.events import (
    Location,
    MemberEnrolled,
    OpinionAssigned,
    OpinionFiled,
    OpinionReceived,
    SubmissionForm,
    new_id,
)
from tools.demo import wait_for

from .followup_replicas import Replicas, assignment, replicas
from .test_followup_editorial_replicas import QUIET, brief

__all__ = ["replicas"]


class Members:
    def __init__(self, http: httpx.AsyncClient, system: Replicas) -> None:
        self.http, self.system = http, system

    async def call(
        self, method: str, who: str, path: str, body: Any = None, replica: int = 0
    ) -> httpx.Response:
        url = f"{self.system.url(replica)}{path}"
        return await self.http.request(method, url, headers=self.system.header(who), json=body)

    async def record(self, member: str, points: int) -> dict[str, Any]:
        """The member's year as the other replica reads it, once it shows ``points``."""
        year = beijing_year(utcnow())

        async def found() -> dict[str, Any] | None:
            r = await self.http.get(
                f"{self.system.url(1)}/members/{member}/record",
                headers=self.system.header("supervisor"),
                params={"year": year},
            )
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            return body if body["points"] == points else None

        return await wait_for(found, f"{member} at {points} points", within=60)


async def _member_opinion(system: Replicas, member: str, co_signers: tuple[str, ...] = ()) -> str:
    """An opinion registered for ``member`` (1 submission) and its ``co_signers``, with its
    case and brief."""
    opinion_id = new_id()
    fields = assignment(opinion_id)
    await system.publish(
        OpinionReceived(
            opinion_id=opinion_id,
            tracking_no=fields["tracking_no"],
            office_id="office-fu",
            title=fields["title"],
            content="和平路多盏路灯夜间不亮。",
            channel="委员提交",
            submitter_kind="委员",
            location=Location(district="示范区"),
            received_at=datetime.fromisoformat(fields["received_at"]),
            member_id=member,
            co_signers=list(co_signers),
        )
    )
    await system.publish(OpinionAssigned.model_validate(fields))
    briefed_with = brief(opinion_id, member)
    signed = briefed_with.opinion.model_copy(update={"co_signers": list(co_signers)})
    await system.publish(briefed_with.model_copy(update={"opinion": signed}))

    async def briefed() -> bool:
        case = await system.case(opinion_id)
        return case is not None and case["opinion"] is not None

    await wait_for(briefed, "the case with its brief", within=60)
    return opinion_id


def _fields(response: httpx.Response) -> set[str]:
    assert response.status_code == 422, response.text
    return {e["field"] for e in response.json()["errors"]}


async def test_rules_change_points_and_a_mark_counts_once(replicas: Replicas) -> None:
    system = replicas
    member = f"m-{new_id()}"
    await system.publish(
        MemberEnrolled(member_id=member, office_id="office-fu", member_name="周委员", kind="委员")
    )
    opinion_id = await _member_opinion(system, member)
    async with httpx.AsyncClient(timeout=10) as http:
        api = Members(http, system)
        before = await api.record(member, 1)  # the default: 1 point for submitting
        assert (before["rules_version"], before["minimum"], before["below_minimum"]) == (
            0,
            10,
            True,
        )
        read = await api.call("GET", "office", "/members/points-rules")
        assert read.status_code == 200, read.text
        rules = read.json()
        assert rules["version"] == 0 and rules["lead"]["adopted_national"] == 10
        assert rules["annual_minimum"] == {"委员": 10, "代表": 10}

        # Bad rules: each bad field named, in Chinese and English; nothing stored.
        table = {k: rules[k] for k in ("lead", "co_signer", "annual_minimum")}
        bad = {
            "version": 0,
            "lead": {**rules["lead"], "filed": -1, "bribe": 3},
            "co_signer": {**rules["co_signer"], "key": 10**12},
            "annual_minimum": {"委员": 10, "党员": 3},
        }
        refused = await api.call("PUT", "supervisor", "/members/points-rules", bad)
        assert _fields(refused) == {
            "lead.filed",
            "lead.bribe",
            "co_signer.key",
            "annual_minimum.党员",
        }
        messages = {e["field"]: e["message"] for e in refused.json()["errors"]}
        assert messages["lead.filed"] == "不能小于 0" and messages["lead.bribe"] == "不允许的字段"
        no_version = await api.call("PUT", "supervisor", "/members/points-rules", table)
        assert _fields(no_version) == {"version"}
        for who in ("housing", "office"):
            change = {**table, "version": 0}
            denied = await api.call("PUT", who, "/members/points-rules", change)
            assert denied.status_code == 403, denied.text

        # A new rule: the member's points are read with it, on the other replica too.
        newer = {
            **table,
            "version": 0,
            "lead": {**rules["lead"], "submitted": 4, "key": 6},
            "annual_minimum": {"委员": 4, "代表": 10},
        }
        saved = await api.call("PUT", "supervisor", "/members/points-rules", newer)
        assert saved.status_code == 200, saved.text
        assert (saved.json()["version"], saved.json()["updated_by"]) == (1, "督查室")
        stale = await api.call("PUT", "chief", "/members/points-rules", newer)
        assert stale.status_code == 409 and "请刷新" in stale.json()["detail"]
        after = await api.record(member, 4)
        assert (after["rules_version"], after["minimum"], after["below_minimum"]) == (1, 4, False)
        assert after["totals"] == {"submitted": 1}  # the facts did not change, the rule did

        # 重点: the bonus once, however often it is marked or its event delivered.
        path = f"/cases/{opinion_id}/marks/key"
        marked = await api.call("PUT", "supervisor", path, {"reason": "主席会议确定为重点提案"})
        assert marked.status_code == 200, marked.text
        assert (marked.json()["marked"], marked.json()["generation"]) == (True, 1)
        again = await api.call("PUT", "chief", path, {}, replica=1)
        assert again.status_code == 200 and again.json()["generation"] == 1
        await api.record(member, 4 + 6)

        def marks() -> list[Any]:
            return list({e.id: e for e in system.of(opinion_id, "opinion.marked")}.values())

        await wait_for(lambda: len(marks()) == 1, "the opinion.marked event", within=30)
        [event] = marks()
        handled = await system.handled({event.type})
        await system.republish(event)  # a redelivery: the same event id
        await system.publish(event.payload())  # a duplicate in another envelope

        async def both_handled() -> bool:
            return await system.handled({event.type}) >= handled + 2

        await wait_for(both_handled, "the redeliveries handled", within=60)
        await asyncio.sleep(QUIET)
        marked_once = await api.record(member, 10)
        assert marked_once["totals"] == {"submitted": 1, "key": 1}

        # Taken back: the bonus goes; taking it back twice changes nothing more.
        taken = await api.call("DELETE", "supervisor", path)
        assert taken.status_code == 200 and taken.json()["generation"] == 2
        assert (await api.call("DELETE", "supervisor", path)).json()["generation"] == 2
        await api.record(member, 4)

        # A higher minimum puts the member below it.
        higher = {**newer, "version": 1, "annual_minimum": {"委员": 50, "代表": 10}}
        assert (
            await api.call("PUT", "supervisor", "/members/points-rules", higher)
        ).status_code == 200
        year = str(beijing_year(utcnow()))
        below = await http.get(
            f"{system.url(0)}/members/below-minimum",
            headers=system.header("supervisor"),
            params={"year": year},
        )
        [listed] = [m for m in below.json() if m["member_id"] == member]
        assert (listed["points"], listed["minimum"], listed["rules_version"]) == (4, 50, 2)


async def test_marks_are_refused_where_no_member_earns_them(replicas: Replicas) -> None:
    system = replicas
    async with httpx.AsyncClient(timeout=10) as http:
        api = Members(http, system)
        unknown = await api.call("PUT", "supervisor", f"/cases/{new_id()}/marks/key", {})
        assert unknown.status_code == 404, unknown.text
        citizen = new_id()
        await system.publish(OpinionAssigned.model_validate(assignment(citizen)))
        await wait_for(lambda: system.case(citizen), "the citizen's case", within=60)
        no_member = await api.call("PUT", "supervisor", f"/cases/{citizen}/marks/excellent", {})
        assert no_member.status_code == 409 and "委员/代表" in no_member.json()["detail"]
        bad_kind = await api.call("PUT", "supervisor", f"/cases/{citizen}/marks/gold", {})
        assert _fields(bad_kind) == {"path.mark"}
        long = {"reason": "理" * 501}
        assert _fields(
            await api.call("PUT", "supervisor", f"/cases/{citizen}/marks/key", long)
        ) == {"reason"}
        denied = await api.call("PUT", "housing", f"/cases/{citizen}/marks/key", {})
        assert denied.status_code == 403


async def test_the_lead_and_each_co_signer_earn_their_roles_points(replicas: Replicas) -> None:
    system = replicas
    lead, co = f"m-{new_id()}", f"m-{new_id()}"
    for member, name, kind in ((lead, "吴委员", "委员"), (co, "郑代表", "代表")):
        await system.publish(
            MemberEnrolled(member_id=member, office_id="office-fu", member_name=name, kind=kind)
        )
    opinion_id = await _member_opinion(system, lead, (co,))
    case = await system.case(opinion_id)
    assert case is not None
    await system.publish(
        OpinionFiled(
            opinion_id=opinion_id,
            tracking_no=case["tracking_no"],
            office_id="office-fu",
            title=case["title"],
            form=SubmissionForm.PROPOSAL,
            filed=True,
            reason="符合立案条件",
            decided_by="提案委",
            filed_at=utcnow(),
            member_id=lead,
            co_signers=[co],
        )
    )
    async with httpx.AsyncClient(timeout=10) as http:
        api = Members(http, system)
        rules = (await api.call("GET", "supervisor", "/members/points-rules")).json()
        by_lead, by_co = rules["lead"], rules["co_signer"]
        # 提交 and 立案, each by its role's points.
        await api.record(lead, by_lead["submitted"] + by_lead["filed"])
        await api.record(co, by_co["submitted"] + by_co["filed"])
        adopted = {"level": "市", "adopted_by": "市政协", "note": ""}
        r = await api.call("POST", "supervisor", f"/cases/{opinion_id}/adoptions", adopted)
        assert r.status_code == 200, r.text
        excellent = await api.call("PUT", "supervisor", f"/cases/{opinion_id}/marks/excellent", {})
        assert excellent.json()["co_signers"] == [co]
        for_lead = sum(by_lead[o] for o in ("submitted", "filed", "adopted_city", "excellent"))
        for_co = sum(by_co[o] for o in ("submitted", "filed", "adopted_city", "excellent"))
        assert for_lead != for_co  # the roles' rows differ, so the test tells them apart
        mine = await api.record(lead, for_lead)
        theirs = await api.record(co, for_co)
        assert mine["totals"] == dict.fromkeys(
            ("submitted", "filed", "adopted_city", "excellent"), 1
        )
        assert theirs["totals"] == {
            "co_submitted": 1,
            "co_filed": 1,
            "co_adopted_city": 1,
            "co_excellent": 1,
        }
        # The co-signer's row of the rules moves only the co-signer's points.
        change = {k: rules[k] for k in ("lead", "annual_minimum")}
        change |= {"version": rules["version"], "co_signer": {**by_co, "adopted_city": 9}}
        saved = await api.call("PUT", "supervisor", "/members/points-rules", change)
        assert saved.status_code == 200, saved.text
        await api.record(co, for_co - by_co["adopted_city"] + 9)
        await api.record(lead, for_lead)
        report = await http.get(
            f"{system.url(0)}/members/{co}/report",
            headers=system.header("office"),
            params={"year": str(beijing_year(utcnow()))},
        )
        header = report.content.decode("utf-8-sig").splitlines()[0].split(",")
        assert "市级采用(联名)" in header and "立案(联名)" in header
