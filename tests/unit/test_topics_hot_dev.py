"""专题 on real data: how the grouping recovers the labelled topics of ``hot-dev.csv``.

A labelled topic is matched to the detected topic holding most of its members (ties: the
hotter). Precision = its labelled members in that topic / the topic's size (every unlabelled
member counts against it, though many are the same matter — the file repeats some messages
— so this is a lower bound); labelled precision = the same over the topic's members that carry
any label; recall = its labelled members in the topic / the labelled topic's size. Run with
``-s`` to see the figures docs/topics.md reports. Skips without the data."""

import csv
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import pytest

from services.routing.topics.domain import DetectedTopic, detect, entries_from_csv

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "hot-dev.csv"

pytestmark = pytest.mark.skipif(not DATA.is_file(), reason=f"{DATA} is not here")


def _rows() -> list[dict[str, str]]:
    with DATA.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def scores(
    topics: list[DetectedTopic], labelled: dict[str, set[str]]
) -> dict[str, tuple[float, float, float, DetectedTopic]]:
    """Per labelled topic: precision, labelled precision, recall and the matched topic."""
    any_label = set().union(*labelled.values())
    found = {}
    for name, members in labelled.items():
        best = max(topics, key=lambda t: (len(members & set(t.members)), t.summary.heat.value))
        hits = len(members & set(best.members))
        carrying = len(any_label & set(best.members))
        found[name] = (hits / len(best.members), hits / carrying, hits / len(members), best)
    return found


@pytest.mark.parametrize("days", [30, 365])
def test_labelled_topics_are_recovered(days: int) -> None:
    rows = _rows()
    entries = entries_from_csv(rows, list(rows[0]))
    topics = detect(entries, timedelta(days=days))
    labelled: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        if row["topic"]:
            labelled[row["topic"]].add(row["id"])
    assert len(labelled) == 4 and sum(map(len, labelled.values())) == 37

    # Every opinion is in at most one topic; hottest first.
    members = [m for t in topics for m in t.members]
    assert len(members) == len(set(members))
    heats = [t.summary.heat.value for t in topics]
    assert heats == sorted(heats, reverse=True)

    figures = scores(topics, labelled)
    print(f"\nwindow {days} days: {len(topics)} topics holding {len(members)} opinions")
    for name, (precision, labelled_p, recall, best) in sorted(figures.items()):
        print(
            f"  {name}: P={precision:.2f} P(labelled)={labelled_p:.2f} R={recall:.2f}"
            f" in {best.id} ({len(best.members)}: {best.summary.label})"
        )
    print("  hottest 10:")
    for t in topics[:10]:
        print(f"   {t.summary.heat.value:6.2f} {len(t.members):3d} {t.summary.label}")
    # A floor against regressions, well under what the grouping reaches (docs/topics.md).
    assert all(p >= 0.5 for p, _, _, _ in figures.values())
    assert sum(r for _, _, r, _ in figures.values()) / len(figures) >= 0.4
