"""``minyi bench routing``: the classifier against the TF-IDF (character 1–3-grams) + linear SVM
baseline on the same held-out splits of the development data, inference latency per opinion,
and training time on 5,000 rows — each also measured for the baseline in the same run.

The data is read from ``../shared/data`` beside the checkout; without it the suite is skipped."""

import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedShuffleSplit, train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.svm import LinearSVC

from .classifier import LabelledText, OpinionClassifier, read_labelled_csv

DATA_FILE = Path(__file__).resolve().parents[3] / "shared" / "data" / "opinions-dev.csv"
SPLITS = 5
HELD_OUT = 0.2
TRAINING_ROWS = 5_000


def full_text(example: LabelledText) -> str:
    """All of title and content: the reference reads whole messages."""
    return f"{example.title}。{example.content}"


def baseline(examples: list[LabelledText]) -> Pipeline:
    """The reference: TF-IDF over character 1–3-grams and a linear SVM, default settings."""
    model = make_pipeline(TfidfVectorizer(analyzer="char", ngram_range=(1, 3)), LinearSVC())
    return model.fit([full_text(e) for e in examples], [e.category for e in examples])


def _p99_ms(samples: list[float]) -> float:
    return round(float(np.percentile(samples, 99)) * 1000, 3)


def _varied(rows: list[LabelledText], count: int, seed: int) -> list[LabelledText]:
    """``count`` distinct rows made from ``rows``: each a resampled row whose content is
    rotated at a random point, so the vocabulary grows as it would with new messages."""
    rng = random.Random(seed)
    made = []
    for _ in range(count):
        row = rng.choice(rows)
        cut = rng.randrange(len(row.content) or 1)
        made.append(LabelledText(row.title, row.content[cut:] + row.content[:cut], row.category))
    return made


def run(output: Path) -> dict[str, Any]:
    """Run the suite; ``output`` is unused beyond the JSON the CLI writes."""
    if not DATA_FILE.is_file():
        return {"skipped": f"{DATA_FILE} not found"}
    rows = read_labelled_csv(DATA_FILE.read_bytes())
    labels = [r.category for r in rows]
    splitter = StratifiedShuffleSplit(n_splits=SPLITS, test_size=HELD_OUT, random_state=2026)
    # First the split `minyi routing train --hold-out 0.2` makes (same seed), then others.
    cli_train, cli_test = train_test_split(
        list(range(len(rows))), test_size=HELD_OUT, random_state=42, stratify=labels
    )
    partitions = [(cli_train, cli_test), *splitter.split(rows, labels)]
    splits = []
    ours_latency: list[float] = []
    ours_cpu: list[float] = []
    base_latency: list[float] = []
    for train_index, test_index in partitions:
        train = [rows[i] for i in train_index]
        test = [rows[i] for i in test_index]
        truth = [r.category for r in test]
        reference = baseline(train)
        ours = OpinionClassifier(train)
        base_f1 = f1_score(truth, reference.predict([full_text(r) for r in test]), average="macro")
        ours_f1 = f1_score(truth, ours.predict_many(test), average="macro")
        splits.append({"baseline": round(base_f1, 4), "ours": round(ours_f1, 4)})
        # One opinion at a time, as the service routes them.
        for row in test:
            started, cpu = time.perf_counter(), time.thread_time()
            ours.predict(row.title, row.content)
            ours_latency.append(time.perf_counter() - started)
            ours_cpu.append(time.thread_time() - cpu)
            started = time.perf_counter()
            reference.predict([full_text(row)])
            base_latency.append(time.perf_counter() - started)
    deltas = [s["ours"] - s["baseline"] for s in splits]

    big = _varied(rows, TRAINING_ROWS, seed=7)
    started = time.perf_counter()
    OpinionClassifier(big)
    ours_train = time.perf_counter() - started
    started = time.perf_counter()
    baseline(big)
    base_train = time.perf_counter() - started
    return {
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cores": os.cpu_count(),
        "data": {"rows": len(rows), "labels": len(set(labels))},
        "split": f"the CLI's hold-out (seed 42) and {SPLITS} more stratified splits, "
        f"{HELD_OUT:.0%} held out each",
        "macro_f1": {
            "baseline_mean": round(statistics.mean(s["baseline"] for s in splits), 4),
            "ours_mean": round(statistics.mean(s["ours"] for s in splits), 4),
            "delta_mean": round(statistics.mean(deltas), 4),
            "delta_min": round(min(deltas), 4),
            "splits": splits,
        },
        "inference_ms_per_opinion": {
            "ours_p50": round(statistics.median(ours_latency) * 1000, 3),
            "ours_p99": _p99_ms(ours_latency),
            # CPU time excludes waiting for a core on a busy machine.
            "ours_cpu_p99": _p99_ms(ours_cpu),
            "baseline_p99": _p99_ms(base_latency),
            "ratio_p99": round(_p99_ms(ours_latency) / _p99_ms(base_latency), 2),
            "opinions": len(ours_latency),
        },
        "training_seconds_5000_rows": {
            "ours": round(ours_train, 2),
            "baseline": round(base_train, 2),
            "ratio": round(ours_train / base_train, 2),
        },
    }
