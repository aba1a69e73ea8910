"""Follow-up use cases: each loads the case, lets the domain decide, stores the timers it
needs, saves state and events together (outbox), and retries when another writer changed the
case meanwhile.

Timers are stored before the case is saved: a timer whose case change was lost finds nothing
to do when it fires (its generation does not match), while the reverse order could lose it.
A new case is the exception (open_case): its timers follow its insert."""

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, TypeVar

from shared.clock import utcnow
from shared.events import (
    AdoptionLevel,
    CloudEvent,
    EventData,
    MarkKind,
    MemberEnrolled,
    OpinionAssigned,
    OpinionBriefed,
    OpinionMerged,
    OpinionSplit,
    OpinionWithdrawn,
    Rating,
    ReplyResult,
    ReportAdopted,
    ReportInstructed,
    RequestKind,
    new_id,
)
from shared.files import REFUSED_KIND, ChunkStore, FileRef, media_type_of
from shared.messaging import PermanentFailure
from shared.store import Aggregate, Repository, VersionConflict, retry_on_conflict

from .adapters import (
    Calendars,
    Clock,
    FeedbackTokens,
    Kpis,
    MemberOnRoster,
    Members,
    PointsRuleStore,
    ReviewSettings,
    Timers,
)
from .domain import (
    Attachment,
    Case,
    CaseError,
    CaseFile,
    Draft,
    Grading,
    LinkedOpinion,
    Mark,
    PointsRules,
    PointsRuleTable,
    Policy,
    Report,
    ReportSource,
    Rules,
    Theme,
    ThemeTask,
    Timer,
    kpi_change,
    member_points,
    month_of,
)

SOURCE = "/minyi/followup"
A = TypeVar("A", bound=Aggregate)

log = logging.getLogger("minyi.followup")


@dataclass
class FollowupPorts:
    cases: Repository[Case]
    timers: Timers
    calendars: Calendars
    kpis: Kpis
    # 履职积分 facts by member, apart from the case facts so totals never count twice.
    member_kpis: Kpis
    clock: Clock
    # Files departments upload for their replies.
    files: ChunkStore
    tokens: FeedbackTokens
    policy: Policy
    # 每月一题.
    themes: Repository[Theme]
    # The members' roster; the 履职积分 rules (points by role and outcome, annual minimums by
    # kind) and the 重点/优秀 marks that earn a bonus.
    members: Members
    points_rules: PointsRuleStore
    marks: Repository[Mark]
    # 审核: which replies wait for review; 信息专报.
    reviews: ReviewSettings
    reports: Repository[Report]

    async def rules(self, now: datetime) -> Rules:
        return Rules(await self.calendars.around(now), self.policy)


def _wrap(events: list[EventData]) -> list[CloudEvent]:
    return [CloudEvent.wrap(SOURCE, e) for e in events]


async def _found(repository: Repository[A], aggregate_id: str, missing: str) -> A:
    """The stored aggregate, or 404 with ``missing``."""
    found = await repository.get(aggregate_id)
    if found is None:
        raise CaseError(404, missing)
    return found


async def _load(cases: Repository[Case], case_id: str) -> Case:
    return await _found(cases, case_id, f"No case {case_id}.")


async def open_case(event_id: str, assigned: OpinionAssigned, p: FollowupPorts) -> None:
    """A department was assigned: open the case or add the assignment, once per event.

    A brand-new opinion (the usual case) is inserted at once, without reading the store for a
    case that is not there; only when one exists is it read. Its timers are stored after the
    insert: stored before it, the timers of a fresh case would stay under the ids of an
    existing case's (their fire times computed from this event instead of that case). A crash
    between the insert and the timers leaves the event unacknowledged: its redelivery finds
    the event handled and stores the assignment's timers again (those stored are kept, those
    that acted are left out)."""
    now = await p.clock.now()
    rules = await p.rules(now)
    case, timers = Case.open(assigned, now, rules)
    case.mark_handled(event_id)
    if await p.cases.add(case, []):
        await p.timers.schedule(timers)
        return

    async def change() -> None:
        now = await p.clock.now()
        rules = await p.rules(now)
        case = await p.cases.get_to_change(assigned.opinion_id)
        if case is None:
            raise VersionConflict(f"case {assigned.opinion_id} is being opened")
        if case.has_handled(event_id):
            await p.timers.schedule(case.timers_of(assigned.department, rules))
            return
        await p.timers.schedule(case.assign(assigned, now, rules))
        case.mark_handled(event_id)
        await p.cases.save(case, [])

    await retry_on_conflict(change)


class NotAssignedYet(Exception):
    """An event about an assignment this service has not stored yet (its ``opinion.assigned``
    is still in flight): retried with backoff, parked if it never comes."""


async def withdraw(event_id: str, withdrawn: OpinionWithdrawn, p: FollowupPorts) -> None:
    """改派: routing moved the opinion away from a department; its assignment ends, once."""

    async def change() -> None:
        case = await p.cases.get(withdrawn.opinion_id)
        if case is not None and case.has_handled(event_id):
            return
        if case is None or withdrawn.department not in case.assignments:
            raise NotAssignedYet(
                f"case {withdrawn.opinion_id} has no assignment of {withdrawn.department} yet"
            )
        case.withdraw(withdrawn.department, withdrawn.reason, await p.clock.now())
        case.mark_handled(event_id)
        await p.cases.save(case, [])

    await retry_on_conflict(change)


async def take_brief(briefed: OpinionBriefed, p: FollowupPorts) -> None:
    """The whole opinion from intake (交办材料), newest revision kept; it follows the
    assignment, which may still be on its way."""

    async def change() -> None:
        # Usually right after open_case stored it, in this process: no read.
        case = await p.cases.get_to_change(briefed.opinion_id)
        if case is None:
            raise NotAssignedYet(f"case {briefed.opinion_id} is not open yet")
        if case.take_brief(briefed, await p.clock.now()):
            await p.cases.save(case, [])

    await retry_on_conflict(change)


async def merge(event_id: str, merged: OpinionMerged, p: FollowupPorts) -> None:
    """并案: the merged opinion's assignments and timers end; the departments are told."""

    async def change() -> None:
        case = await p.cases.get(merged.opinion_id)
        if case is None or case.has_handled(event_id):
            return  # never assigned (e.g. merged from triage): nothing to end
        events = case.merge_into(merged, await p.clock.now())
        case.mark_handled(event_id)
        await p.cases.save(case, _wrap(events))

    await retry_on_conflict(change)
    await p.timers.cancel(merged.opinion_id)


async def split_off(event_id: str, split: OpinionSplit, p: FollowupPorts) -> None:
    """拆分 of a merged case: its departments work on it again, with new deadlines."""

    async def change() -> None:
        case = await p.cases.get(split.opinion_id)
        if case is None or case.has_handled(event_id):
            return
        now = await p.clock.now()
        await p.timers.schedule(case.split_off(split, now, await p.rules(now)))
        case.mark_handled(event_id)
        await p.cases.save(case, [])

    await retry_on_conflict(change)


Change = Callable[[Case, datetime, Rules], tuple[list[EventData], list[Timer]]]


async def _act(p: FollowupPorts, case_id: str, change: Change, record: bool = False) -> Case:
    """Load, change, schedule the new timers, save with the events (``record``: also when the
    change is only on the case, such as a callback not reached)."""

    async def attempt() -> Case:
        now = await p.clock.now()
        case = await _load(p.cases, case_id)
        events, timers = change(case, now, await p.rules(now))
        if events or record:
            await p.timers.schedule(timers)
            await p.cases.save(case, _wrap(events))
        return case

    return await retry_on_conflict(attempt)


def _no_timers(events: list[EventData]) -> tuple[list[EventData], list[Timer]]:
    return events, []


async def sign(p: FollowupPorts, case_id: str, department: str, by: str | None = None) -> Case:
    """签收 (idempotent). ``by`` (here and below): who acts, for the timeline."""
    return await _act(p, case_id, lambda c, now, _: _no_timers(c.sign(department, now, by)))


def _feedback_url(p: FollowupPorts, case: Case, now: datetime, rules: Rules) -> str:
    """The submitter's signed link for the next feedback round."""
    expires = rules.calendar.due(now, rules.policy.feedback_window)
    return p.tokens.url(case.id, case.feedback_round + 1, expires)


async def reply(
    p: FollowupPorts,
    case_id: str,
    department: str,
    result: ReplyResult,
    text: str,
    attachments: list[Attachment],
    by: str | None = None,
    grading: Grading | None = None,
) -> Case:
    """答复 by the lead; the submitter gets a signed single-use feedback link — after review
    (审核) where a review rule applies to the case's category, urgency and department. A filed
    (立案) submission's reply is graded; a grade B is followed up instead."""
    review_rules = await p.reviews.get()

    def change(case: Case, now: datetime, rules: Rules) -> tuple[list[EventData], list[Timer]]:
        review = review_rules.match(case.category, case.urgency, department)
        url = _feedback_url(p, case, now, rules)
        return case.reply(
            department, result, text, attachments, now, rules, url, by, grading, review
        )

    return await _act(p, case_id, change)


async def review_reply(
    p: FollowupPorts,
    case_id: str,
    department: str,
    approve: bool,
    reason: str,
    by: str,
    office: str | None,
) -> Case:
    """审核 of the department's reply: approved (released to the submitter) or sent back with
    a reason. ``office``: the reviewing office's code, None for a supervisor."""

    def change(case: Case, now: datetime, rules: Rules) -> tuple[list[EventData], list[Timer]]:
        if approve:
            url = _feedback_url(p, case, now, rules)
            return case.approve_reply(department, by, office, now, rules, url)
        return case.send_back(department, reason, by, office, now), []

    return await _act(p, case_id, change)


async def upload_file(
    p: FollowupPorts, case_id: str, department: str, filename: str, data: bytes
) -> tuple[str, CaseFile]:
    """Store a file for the lead's reply, then reference it from the case (bytes first: no
    dangling reference; the case is checked first so refused uploads store nothing)."""
    if not data:
        raise CaseError(422, "The file is empty 附件为空.")
    media_type = media_type_of(filename, data)
    if media_type is None:
        raise CaseError(415, REFUSED_KIND)
    file_id = new_id()
    ref = FileRef(filename=filename, media_type=media_type, size=len(data), uploaded_at=utcnow())
    (await _load(p.cases, case_id)).model_copy(deep=True).upload(department, file_id, ref)
    await p.files.put(file_id, data)

    async def attempt() -> CaseFile:
        case = await _load(p.cases, case_id)
        case.upload(department, file_id, ref)
        await p.cases.save(case, [])
        return case.files[file_id]

    return file_id, await retry_on_conflict(attempt)


async def give_input(
    p: FollowupPorts, case_id: str, department: str, text: str, by: str | None = None
) -> Case:
    """协办意见 to the lead."""
    return await _act(
        p, case_id, lambda c, now, _: _no_timers(c.give_input(department, text, now, by))
    )


async def request_extension(
    p: FollowupPorts,
    case_id: str,
    department: str,
    reason: str,
    new_due: date,
    by: str | None = None,
) -> Case:
    """申请延期."""
    return await _act(
        p,
        case_id,
        lambda c, now, rules: _no_timers(
            c.request_extension(department, reason, new_due, now, rules, by)
        ),
    )


async def decide_extension(
    p: FollowupPorts, case_id: str, department: str, approve: bool, reason: str, actor: str
) -> Case:
    """延期审批 by a supervisor."""
    return await _act(
        p,
        case_id,
        lambda c, now, rules: c.decide_extension(department, approve, reason, actor, now, rules),
    )


async def correct_kind(p: FollowupPorts, case_id: str, kind: RequestKind, by: str) -> Case:
    """更正诉求类型 by 分类 staff: the 办结 deadline counted again from 交办 with the new kind."""
    return await _act(
        p, case_id, lambda c, now, rules: ([], c.correct_kind(kind, by, now, rules)), record=True
    )


async def respond(
    p: FollowupPorts, case_id: str, department: str, how: str, by: str | None = None
) -> Case:
    """响应 (idempotent)."""
    return await _act(p, case_id, lambda c, now, _: _no_timers(c.respond(department, how, now, by)))


async def request_return(
    p: FollowupPorts,
    case_id: str,
    department: str,
    code: str,
    evidence: str,
    attachments: list[Attachment],
    by: str | None = None,
) -> Case:
    """申请退单."""
    return await _act(
        p,
        case_id,
        lambda c, now, rules: _no_timers(
            c.request_return(department, code, evidence, attachments, now, rules, by)
        ),
    )


async def dispute_return(
    p: FollowupPorts, case_id: str, department: str, text: str, by: str | None = None
) -> Case:
    """退单申诉 (to the 终审)."""
    return await _act(
        p, case_id, lambda c, now, _: _no_timers(c.dispute_return(department, text, now, by))
    )


async def decide_return(
    p: FollowupPorts, case_id: str, department: str, accept: bool, reason: str, actor: str
) -> Case:
    """退单审核 or 终审."""
    return await _act(
        p,
        case_id,
        lambda c, now, _: _no_timers(c.decide_return(department, accept, reason, actor, now)),
    )


async def escalate(
    p: FollowupPorts, case_id: str, department: str, level: int | None, reason: str, actor: str
) -> Case:
    """催办/督办 by hand."""
    return await _act(
        p,
        case_id,
        lambda c, now, _: _no_timers(c.escalate(department, level, reason, actor, now)),
    )


async def instruct(p: FollowupPorts, case_id: str, leader: str, text: str) -> Case:
    """批示."""
    return await _act(p, case_id, lambda c, now, _: _no_timers(c.instruct(leader, text, now)))


async def adopt(p: FollowupPorts, case_id: str, level: AdoptionLevel, by: str, note: str) -> Case:
    """采用."""
    return await _act(p, case_id, lambda c, now, _: _no_timers(c.adopt(level, by, note, now)))


class UnknownOpinions(Exception):
    """Source opinions of a report that have no case here (not assigned yet, or no such
    opinion): their positions in the request."""

    def __init__(self, positions: list[int]) -> None:
        super().__init__(f"no case for the opinions at {positions}")
        self.positions = positions


async def compile_report(
    p: FollowupPorts,
    number: str,
    unit: str,
    topic_id: str | None,
    opinion_ids: list[str],
    draft: Callable[[datetime], Draft],
) -> Report:
    """编辑 a 信息专报 from opinions (each must have a case), with its first draft."""
    found = [await p.cases.get(opinion_id) for opinion_id in opinion_ids]
    missing = [i for i, case in enumerate(found) if case is None]
    if missing:
        raise UnknownOpinions(missing)
    sources = [ReportSource.of(c) for c in found if c is not None]
    report = Report.compile(new_id(), number, unit, topic_id, sources, draft(await p.clock.now()))
    await p.reports.add(report, [])
    return report


async def load_report(p: FollowupPorts, report_id: str) -> Report:
    return await _found(
        p.reports, report_id, f"未找到信息专报 {report_id} / No report {report_id}."
    )


async def change_report(
    p: FollowupPorts, report_id: str, change: Callable[[Report, datetime], list[EventData] | None]
) -> Report:
    """Load a report, change it (修改, 签发, 报送, 采用, 批示), save it with its events."""

    async def attempt() -> Report:
        report = await load_report(p, report_id)
        events = change(report, await p.clock.now())
        await p.reports.save(report, _wrap(events or []))
        return report

    return await retry_on_conflict(attempt)


async def credit_sources(
    event_id: str, outcome: ReportAdopted | ReportInstructed, p: FollowupPorts
) -> None:
    """A report's 采用 or 批示 reaches each of its source opinions, once per event."""
    for opinion_id in outcome.opinion_ids:
        await _credit(p, event_id, outcome, opinion_id)


async def _credit(
    p: FollowupPorts, event_id: str, outcome: ReportAdopted | ReportInstructed, opinion_id: str
) -> None:
    async def change() -> None:
        case = await p.cases.get(opinion_id)
        if case is None or case.has_handled(event_id):
            return
        events = case.credit_report(outcome, await p.clock.now())
        case.mark_handled(event_id)
        await p.cases.save(case, _wrap(events))

    await retry_on_conflict(change)


async def rate(
    p: FollowupPorts, token: str, rating: Rating, comment: str, resolved: bool | None
) -> Case:
    """评价 through a signed link; a forged, expired or used link is refused."""
    case_id, feedback_round = p.tokens.verify(token, await p.clock.now())
    return await _act(
        p,
        case_id,
        lambda c, now, rules: c.rate(feedback_round, rating, comment, resolved, now, rules),
    )


async def call_back(
    p: FollowupPorts,
    case_id: str,
    reached: bool,
    rating: Rating | None,
    resolved: bool | None,
    note: str,
    by: str,
) -> Case:
    """电话回访 of the feedback round by platform staff."""
    return await _act(
        p,
        case_id,
        lambda c, now, rules: c.call_back(reached, rating, resolved, note, by, now, rules),
        record=True,
    )


async def review_feedback(
    p: FollowupPorts,
    case_id: str,
    decision: Literal["redo", "unreasonable"],
    reason: str,
    actor: str,
) -> Case:
    """复核 of an 不满意."""
    return await _act(
        p, case_id, lambda c, now, rules: c.review_feedback(decision, reason, actor, now, rules)
    )


async def close_supervision(p: FollowupPorts, case_id: str, result: str, actor: str) -> Case:
    """督办单 办结."""

    def change(case: Case, now: datetime, _: Rules) -> tuple[list[EventData], list[Timer]]:
        case.close_supervision(result, actor, now)
        return [], []

    return await _act(p, case_id, change, record=True)


async def audit_call(
    p: FollowupPorts,
    case_id: str,
    reached: bool,
    rating: Rating | None,
    resolved: bool | None,
    note: str,
    by: str,
) -> Case:
    """抽查回访 of a closed case."""
    return await _act(
        p,
        case_id,
        lambda c, now, _: _no_timers(c.audit_call(reached, rating, resolved, note, by, now)),
    )


async def enrol(enrolled: MemberEnrolled, p: FollowupPorts) -> None:
    """A member on an office's roster (idempotent: the same enrolment writes the same)."""
    member = MemberOnRoster(
        member_id=enrolled.member_id,
        office_id=enrolled.office_id,
        name=enrolled.member_name,
        kind=enrolled.kind,
        sector=enrolled.sector,
    )
    await p.members.put(member)


@dataclass
class MemberYear:
    """一人一档 for a year: the member, the counters of each month and the year's points, by
    the rules in force (``rules``)."""

    member: MemberOnRoster | None
    member_id: str
    year: int
    months: list[dict[str, Any]]
    totals: dict[str, int]
    rules: PointsRules

    @property
    def points(self) -> int:
        return self.rules.points(self.totals)

    @property
    def minimum(self) -> int | None:
        return self.rules.annual_minimum.of(self.member.kind) if self.member else None

    @property
    def below_minimum(self) -> bool:
        return self.minimum is not None and self.points < self.minimum


async def member_year(
    p: FollowupPorts, member_id: str, year: int, rules: PointsRules | None = None
) -> MemberYear:
    """A member's 履职 record of a year, from the member facts month by month, weighed by the
    rules in force now (or ``rules``, read once for many members)."""
    rules = rules or await p.points_rules.current()
    member = await p.members.get(member_id)
    months, totals = [], Counter[str]()
    for n in range(1, 13):
        month = f"{year}-{n:02d}"
        for row in await p.member_kpis.table("member", month):
            if row["value"] == member_id:
                counters = row["counters"]
                points = rules.points(counters)
                months.append({"month": month, "counters": counters, "points": points})
                totals.update(counters)
    return MemberYear(member, member_id, year, months, dict(totals), rules)


async def member_years(
    p: FollowupPorts, year: int, limit: int, office: str | None = None
) -> list[MemberYear]:
    """The year of at most ``limit`` members on the roster (of one office, or all), weighed
    by one reading of the rules."""
    rules = await p.points_rules.current()
    members = await p.members.all(limit, office)
    return [await member_year(p, m.member_id, year, rules) for m in members]


async def below_minimum(p: FollowupPorts, year: int, limit: int) -> list[MemberYear]:
    """The members on the roster whose year's 履职积分 is below the minimum of their kind."""
    return [record for record in await member_years(p, year, limit) if record.below_minimum]


async def set_points_rules(
    p: FollowupPorts, table: PointsRuleTable, version: int, by: str
) -> PointsRules:
    """New 履职积分 rules over ``version`` (the one the supervisor read): 409 when it is not
    the one in force any more."""
    current = await p.points_rules.current()
    stale = (
        f"The rules are at version {current.version}, not {version}: "
        "积分规则已被他人修改，请刷新后重试."
    )
    if version != current.version:
        raise CaseError(409, stale)
    rules = PointsRules(
        **table.model_dump(by_alias=True),
        version=version + 1,
        updated_by=by,
        updated_at=await p.clock.now(),
    )
    if not await p.points_rules.add(rules):
        raise CaseError(409, stale)
    log.info("履职积分 rules version %d set by %s", rules.version, by)
    return rules


async def mark_opinion(
    p: FollowupPorts, case_id: str, mark: MarkKind, marked: bool, reason: str, by: str
) -> Mark:
    """重点/优秀 on an opinion submitted by a member (``marked`` False: taken back); marking
    what is marked already changes nothing."""
    case = await _load(p.cases, case_id)
    if case.member_id is None:
        raise CaseError(409, f"Case {case_id} names no 委员/代表 该意见无委员/代表，不计履职积分.")

    async def change() -> Mark:
        now = await p.clock.now()
        found = await p.marks.get(Mark.key(case_id, mark))
        stored = found is not None
        found = found or Mark(
            id=Mark.key(case_id, mark),
            opinion_id=case_id,
            mark=mark,
            office_id=case.office_id,
            tracking_no=case.tracking_no,
            member_id=case.member_id,
            co_signers=case.co_signers,
        )
        event = found.set(marked, by, reason, now)
        if event is None:
            return found
        if not stored:
            if not await p.marks.add(found, _wrap([event])):
                raise VersionConflict(f"mark {found.id} was made concurrently")
        else:
            await p.marks.save(found, _wrap([event]))
        return found

    return await retry_on_conflict(change)


async def open_theme(
    p: FollowupPorts,
    month: str,
    title: str,
    source: Literal["hot_topic", "kpi"],
    source_ref: str,
    department: str,
    tasks: list[str],
    by: str,
) -> Theme:
    """每月一题: a theme for the month, its owning department and tasks."""
    theme = Theme(
        id=new_id(),
        month=month,
        title=title,
        source=source,
        source_ref=source_ref,
        department=department,
        created_by=by,
        created_at=await p.clock.now(),
        tasks={str(n): ThemeTask(text=text) for n, text in enumerate(tasks, start=1)},
    )
    await p.themes.add(theme, [])
    return theme


async def _theme(p: FollowupPorts, theme_id: str) -> Theme:
    return await _found(p.themes, theme_id, f"No theme {theme_id}.")


async def complete_task(
    p: FollowupPorts, theme_id: str, task: str, note: str, by: str, department: str | None
) -> Theme:
    """A task of the theme done, by its owning department (``department``) or a supervisor."""

    async def change() -> Theme:
        theme = await _theme(p, theme_id)
        if department is not None and department != theme.department:
            raise CaseError(403, f"Theme {theme_id} is owned by {theme.department}.")
        if theme.complete(task, note, by, await p.clock.now()):
            await p.themes.save(theme, [])
        return theme

    return await retry_on_conflict(change)


async def link_to_theme(p: FollowupPorts, theme_id: str, opinion_id: str, by: str) -> Theme:
    """An opinion on the theme, linked to it."""
    case = await p.cases.get(opinion_id)
    if case is None:
        raise CaseError(404, f"No case {opinion_id}.")

    async def change() -> Theme:
        theme = await _theme(p, theme_id)
        linked = LinkedOpinion(
            linked_at=await p.clock.now(),
            linked_by=by,
            tracking_no=case.tracking_no,
            title=case.title,
        )
        if theme.link(opinion_id, linked):
            await p.themes.save(theme, [])
        return theme

    return await retry_on_conflict(change)


async def fire_due_timers(p: FollowupPorts, replica: str, limit: int) -> int:
    """Claim and act on due timers; returns how many this replica acted on."""
    acted = 0
    for timer in await p.timers.due(await p.clock.now(), limit):
        attempt = await p.timers.claim(timer, replica)
        if attempt is None:
            continue  # another replica has it
        try:
            await _fire(p, timer)
        except Exception:
            # The claim lapses after its lease; the timer is then tried again.
            log.exception("timer %s failed", timer.id, extra={"opinion_id": timer.case_id})
            continue
        await p.timers.done(timer, attempt)
        acted += 1
        log.info("timer %s fired by %s", timer.id, replica, extra={"opinion_id": timer.case_id})
    return acted


async def _fire(p: FollowupPorts, timer: Timer) -> None:
    async def change() -> None:
        case = await p.cases.get(timer.case_id)
        if case is None or case.has_handled(timer.id):
            return
        now = await p.clock.now()
        events = case.fire(timer, now, await p.rules(now))
        if not events:
            return  # nothing changed (the work was done, or the deadline moved): no write
        case.mark_handled(timer.id)
        await p.cases.save(case, _wrap(events))

    await retry_on_conflict(change)


async def project(event: CloudEvent, p: FollowupPorts) -> None:
    """Count an event in the KPI projections (by department, office, category, month) and in
    the members' 履职积分."""
    payload = event.payload()
    for points in member_points(event.id, payload):
        values = {"member": points.member, "office": points.office}
        await p.member_kpis.add(points.key, points.month, values, points.counters)
    if isinstance(payload, OpinionAssigned):
        if payload.role != "lead":
            return
        # Counted once per opinion however often routing assigns it again (履职积分: submitted),
        # in the month the opinion was received.
        values = {
            "department": payload.department,
            "office": payload.office_id,
            "category": payload.category,
        }
        key = f"submitted-{payload.opinion_id}"
        await p.kpis.add(key, month_of(payload.received_at), values, {"submitted": 1})
        return
    found = kpi_change(payload)
    if found is None:
        return
    case = await p.cases.get(event.subject)
    if case is None:
        raise PermanentFailure(f"event {event.id} concerns unknown case {event.subject}")
    lead = case.lead()
    department = found.department or (lead.department if lead else "unassigned")
    values = {"department": department, "office": case.office_id, "category": case.category}
    await p.kpis.add(event.id, found.month, values, found.counters)
