"""Routing use cases: route a new opinion, re-decide after a return, staff decisions from the
triage queue, directory changes, and training / retraining the classifier."""

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from shared.events import AssignmentReturned, CloudEvent, EventData, OpinionReceived, utcnow
from shared.messaging import PermanentFailure
from shared.store import Repository, retry_on_conflict

from .adapters import ActiveModel, ModelStore, RoutingViews
from .classifier import (
    Evaluation,
    LabelledText,
    ModelFormatError,
    OpinionClassifier,
    Prediction,
    TrainingDataError,
    baseline_macro_f1,
    evaluate,
    train_classifier,
)
from .domain import (
    DEMO_DIRECTORY,
    DIRECTORY_ID,
    Decision,
    Directory,
    decide,
    redecide_after_return,
    staff_decision,
)

SOURCE = "/minyi/routing"
# A person's correction counts as this many training rows: it is the freshest, most
# authoritative label the router gets, and there are few of them next to the base dataset.
EXAMPLE_WEIGHT = 3.0


class RoutingError(Exception):
    """A request the routing service refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, detail: str, errors: list[dict[str, str]] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []


@dataclass
class RoutingPorts:
    decisions: Repository[Decision]
    directories: Repository[Directory]
    models: ModelStore
    views: RoutingViews


def _wrap(events: list[EventData]) -> list[CloudEvent]:
    return [CloudEvent.wrap(SOURCE, e) for e in events]


async def current_directory(ports: RoutingPorts) -> Directory:
    """The directory; an empty database starts with the shipped demo directory."""
    directory = await ports.directories.get(DIRECTORY_ID)
    if directory is None:
        await ports.directories.add(DEMO_DIRECTORY.model_copy(deep=True), [])
        directory = await ports.directories.get(DIRECTORY_ID)
        assert directory is not None
    return directory


def _predict(active: ActiveModel | None, title: str, content: str) -> Prediction | None:
    return None if active is None else active.classifier.predict(title, content)


async def route_opinion(opinion: OpinionReceived, ports: RoutingPorts) -> None:
    """交办: decide once per opinion; a redelivered opinion.received changes nothing.

    Most opinions are new: decide first and let the insert of the decision tell a redelivery
    (one read less per opinion than looking it up first)."""
    directory = await current_directory(ports)
    active = await ports.models.active()
    model = "—" if active is None else active.version
    prediction = _predict(active, opinion.title, opinion.content)
    decision, events = decide(opinion, directory, prediction, model, utcnow())
    if await ports.decisions.add(decision, _wrap(events)):
        # A new decision has nothing in the views to replace, only a triage entry to add.
        if decision.status == "triage":
            await ports.views.sync(decision)
        return
    if (existing := await ports.decisions.get(opinion.opinion_id)) is not None:
        await ports.views.sync(existing)


async def assignment_returned(
    returned: AssignmentReturned, event_id: str, ports: RoutingPorts
) -> None:
    """退回: re-decide without the returning department; to triage after two returns.

    When the lead returns it, the opinion's text becomes a labelled example *against* the
    category it was routed under (the department's "not ours"), which the next training uses.
    It is stored before the decision, so a redelivery after a crash stores it again, not never."""

    async def change() -> Decision:
        decision = await ports.decisions.get(returned.opinion_id)
        if decision is None:
            raise PermanentFailure(f"no routing decision for opinion {returned.opinion_id}")
        if decision.has_handled(event_id):
            return decision
        events: list[EventData] = []
        # A return from a department that no longer holds the opinion changes nothing.
        if returned.department in {decision.lead, *decision.co}:
            if returned.department == decision.lead and decision.category is not None:
                example = LabelledText(
                    decision.title, decision.content, decision.category, rejected=True
                )
                await ports.views.add_example(
                    _return_example_id(decision.id, returned.department),
                    example,
                    returned.department,
                    returned.returned_at,
                )
            directory = await current_directory(ports)
            events = redecide_after_return(
                decision,
                returned.department,
                returned.reason,
                directory,
                _predict(await ports.models.active(), decision.title, decision.content),
                utcnow(),
            )
        decision.mark_handled(event_id)
        await ports.decisions.save(decision, _wrap(events))
        return decision

    await ports.views.sync(await retry_on_conflict(change))


async def decide_by_staff(
    opinion_id: str,
    category: str,
    lead: str,
    co: list[str],
    urgency: str | None,
    staff: str,
    ports: RoutingPorts,
    *,
    from_triage: bool,
) -> Decision:
    """人工分拣 (``from_triage``) or 改派: a person decides; the decision is a labelled example."""
    returned_by: list[str] = []  # the departments that had returned it, before this decision

    async def change() -> Decision:
        decision = await ports.decisions.get(opinion_id)
        if decision is None:
            raise RoutingError(404, f"No routing decision for opinion {opinion_id}.")
        if from_triage and decision.status != "triage":
            raise RoutingError(
                409,
                f"Opinion {opinion_id} is not in the triage queue 不在待分拣队列; "
                "use /decisions/{id}/reassign to change an assignment.",
            )
        directory = await current_directory(ports)
        returned_by[:] = decision.returns
        try:
            events = staff_decision(
                decision, directory, category, lead, co, urgency, staff, utcnow()
            )
        except ValueError as exc:
            raise RoutingError(422, str(exc)) from None
        await ports.decisions.save(decision, _wrap(events))
        return decision

    decision = await retry_on_conflict(change)
    await ports.views.sync(decision)
    example = LabelledText(decision.title, decision.content, category)
    await ports.views.add_example(opinion_id, example, staff, decision.decided_at)
    # A person who puts it back under a category a department returned overrules that return.
    returns = [_return_example_id(opinion_id, department) for department in returned_by]
    await ports.views.drop_examples(returns, category)
    return decision


def _return_example_id(opinion_id: str, department: str) -> str:
    return f"{opinion_id}:returned:{department}"


async def replace_directory(directory: Directory, ports: RoutingPorts) -> Directory:
    """Validate and store a whole new directory; the one in use stays if it is inconsistent."""
    problems = directory.problems()
    if problems:
        fields = ", ".join(dict.fromkeys(p["field"] for p in problems))
        raise RoutingError(422, f"Invalid directory 目录有误: {fields}", problems)

    async def change() -> Directory:
        current = await current_directory(ports)
        directory.version = current.version
        await ports.directories.save(directory, [])
        return directory

    return await retry_on_conflict(change)


def _train(examples: list[LabelledText]) -> tuple[OpinionClassifier, float]:
    started = time.perf_counter()
    classifier = train_classifier(examples)
    return classifier, round(time.perf_counter() - started, 2)


async def train_model(
    rows: list[LabelledText], source: str, ports: RoutingPorts, activate: bool = True
) -> dict[str, Any]:
    """Train on ``rows`` plus every staff-labelled example, store the version, activate it.

    Bad rows never get here (read_labelled refuses them), so the active model is never
    replaced by a failed training."""
    dataset_id = await ports.models.save_dataset(rows)
    return await _train_and_store(rows, dataset_id, source, ports, activate)


async def retrain(source: str, ports: RoutingPorts) -> dict[str, Any]:
    """Retrain on the active model's dataset and the staff corrections made since."""
    version = await ports.models.active_version()
    info = None if version is None else await ports.models.info(version)
    dataset_id = None if info is None else info.get("dataset_id")
    rows = [] if dataset_id is None else await ports.models.load_dataset(dataset_id)
    return await _train_and_store(rows, dataset_id, source, ports, activate=True)


async def _train_and_store(
    rows: list[LabelledText],
    dataset_id: str | None,
    source: str,
    ports: RoutingPorts,
    activate: bool,
) -> dict[str, Any]:
    corrections = await ports.views.examples()
    counts = Counter(
        [*(r.category for r in rows), *(e.category for e in corrections if not e.rejected)]
    )
    # A category staff used only once cannot be learned yet; that example waits for a second.
    # A return (退回) teaches only a category that is learned.
    usable = [e for e in corrections if counts[e.category] >= 2]
    weighted = [replace(e, weight=EXAMPLE_WEIGHT) for e in usable]
    examples = [*rows, *weighted]
    if len({e.category for e in examples if not e.rejected}) < 2:
        raise TrainingDataError(
            [
                "训练样本不足 / not enough labelled examples: need two categories with at least "
                "two examples each"
            ]
        )
    classifier, seconds = await asyncio.to_thread(_train, examples)
    info = {
        "source": source,
        "dataset_id": dataset_id,
        "rows": len(rows),
        "examples_used": len(corrections),
        "examples_waiting": len(corrections) - len(usable),
        "train_seconds": seconds,
    }
    version = await ports.models.save(classifier, info)
    if activate:
        await ports.models.activate(version)
    return {"version": version, "active": activate, "labels": classifier.labels, **info}


async def evaluate_version(
    rows: list[LabelledText], version: str | None, ports: RoutingPorts
) -> tuple[str, Evaluation, float | None]:
    """Score a stored version (default: the active one) on labelled rows; beside it the
    baseline's macro-F1 (see classifier.train_baseline) trained on the same training file, or
    None when that file is not stored."""
    name = version or await ports.models.active_version()
    if name is None:
        raise RoutingError(409, "No model is active yet 尚无模型: train one first.")
    info = await ports.models.info(name)
    if info is None:
        raise RoutingError(404, f"No model version {name!r} 无此模型版本.")
    try:
        classifier = await ports.models.load(name)
    except ModelFormatError as exc:
        raise RoutingError(409, f"Model {name!r} cannot be loaded 模型数据无效: {exc}") from None
    report = await asyncio.to_thread(evaluate, classifier, rows)
    dataset_id = info.get("dataset_id")
    if dataset_id is None:
        return name, report, None
    trained_on = await ports.models.load_dataset(dataset_id)
    return name, report, await asyncio.to_thread(baseline_macro_f1, trained_on, rows)


async def evaluate_active(rows: list[LabelledText], ports: RoutingPorts) -> dict[str, Any]:
    """Score the active model on labelled rows (accuracy, macro-F1, per class, confusion) and
    the baseline trained on the same rows as the model."""
    version, report, baseline = await evaluate_version(rows, None, ports)
    return {
        "version": version,
        **report.summary(),
        "baseline_macro_f1": baseline,
        "confusion": report.confusion,
        "labels": report.labels,
        "unknown_labels": report.unknown_labels,
    }
