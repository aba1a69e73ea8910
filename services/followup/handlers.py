"""Follow-up use cases: each loads the case, lets the domain decide, saves state and events
together, and retries when another writer changed the case meanwhile."""

from shared.events import CloudEvent, EventData, OpinionAssigned, Rating, ReplyResult, utcnow
from shared.store import Repository, VersionConflict, retry_on_conflict

from .adapters import FeedbackTokens
from .domain import FEEDBACK_WINDOW, Case, CaseError

SOURCE = "/minyi/followup"


def _wrap(events: list[EventData]) -> list[CloudEvent]:
    return [CloudEvent.wrap(SOURCE, e) for e in events]


async def _load(cases: Repository[Case], case_id: str) -> Case:
    case = await cases.get(case_id)
    if case is None:
        raise CaseError(404, f"No case {case_id}.")
    return case


async def open_case(event_id: str, assigned: OpinionAssigned, cases: Repository[Case]) -> None:
    """A department was assigned: open the case or add the assignment, once per event."""

    async def change() -> None:
        now = utcnow()
        case = await cases.get(assigned.opinion_id)
        if case is None:
            case = Case.open(assigned, now)
            case.mark_handled(event_id)
            if not await cases.add(case, []):
                raise VersionConflict(f"case {case.id} was opened concurrently")
            return
        if case.has_handled(event_id):
            return
        case.assign(assigned, now)
        case.mark_handled(event_id)
        await cases.save(case, [])

    await retry_on_conflict(change)


async def sign(cases: Repository[Case], case_id: str, department: str) -> Case:
    async def change() -> Case:
        case = await _load(cases, case_id)
        events = case.sign(department, utcnow())
        if events:
            await cases.save(case, _wrap(events))
        return case

    return await retry_on_conflict(change)


async def reply(
    cases: Repository[Case],
    tokens: FeedbackTokens,
    case_id: str,
    department: str,
    result: ReplyResult,
    text: str,
) -> Case:
    async def change() -> Case:
        now = utcnow()
        case = await _load(cases, case_id)
        url = tokens.url(case.id, case.feedback_round + 1, now + FEEDBACK_WINDOW)
        events = case.reply(department, result, text, now, url)
        await cases.save(case, _wrap(events))
        return case

    return await retry_on_conflict(change)


async def rate(
    cases: Repository[Case], tokens: FeedbackTokens, token: str, rating: Rating, comment: str
) -> Case:
    async def change() -> Case:
        now = utcnow()
        case_id, feedback_round = tokens.verify(token, now)
        case = await _load(cases, case_id)
        events = case.rate(feedback_round, rating, comment, now)
        await cases.save(case, _wrap(events))
        return case

    return await retry_on_conflict(change)
