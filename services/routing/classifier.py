"""The opinion classifier: reads a labelled CSV, trains, predicts with a confidence and the terms
that drove it, evaluates on held-out rows. Pure computation, no database or network.

Features are TF-IDF over character 1–3-grams (no word segmentation, so any Chinese text and any
label set works without hand-made rules); the model is a class-balanced linear SVM (macro-F1
rewards small classes) calibrated by 3-fold cross-validation so ``confidence`` is a probability
the triage threshold can be set against."""

import csv
import io
import pickle
import unicodedata
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)
from sklearn.svm import LinearSVC

# A training file is at most this big; larger ones are refused before parsing.
MAX_TRAINING_BYTES = 30_000_000
# The classifier reads the opening of each message (title first): it names the matter, while
# the rest of a long letter is narrative that dilutes it and costs time. Chosen among 600,
# 1,000, 1,500 and all 4,100 on the development splits: 600 scored best and is the fastest.
MAX_TEXT_CHARS = 600
COLUMNS_REQUIRED = ("content", "category")
COLUMNS_KNOWN = ("id", "title", "content", "category", "time")
# Words shown as the explanation of a prediction.
EXPLANATION_TERMS = 5


class TrainingDataError(ValueError):
    """The training or evaluation file cannot be used; ``problems`` says why, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class LabelledText:
    title: str
    content: str
    category: str
    weight: float = 1.0

    @property
    def text(self) -> str:
        return opinion_text(self.title, self.content)


def opinion_text(title: str, content: str) -> str:
    """The text the classifier reads: title and content, as one string."""
    return f"{title}。{content}"[:MAX_TEXT_CHARS]


def normalize_text(text: str) -> str:
    """Full-width/half-width forms folded (ＡＢＣ１２ → abc12) so offices' input styles agree."""
    return unicodedata.normalize("NFKC", text).lower()


def _decode(data: bytes) -> str:
    # Offices' Excel saves CSV as UTF-8 with BOM or as GB18030 (GBK).
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise TrainingDataError(["文件编码无法识别 / file is neither UTF-8 nor GB18030 text"])


def read_labelled_csv(data: bytes, *, for_training: bool = True) -> list[LabelledText]:
    """Parse a CSV of ``title, content, category`` (``id`` and ``time`` are allowed and ignored).

    Raises TrainingDataError naming every problem: empty or huge file, unknown or missing columns,
    rows without text or label, and (for training) labels with fewer than two examples."""
    if len(data) > MAX_TRAINING_BYTES:
        raise TrainingDataError(
            [
                f"文件过大 / file too large: {len(data):,} bytes, at most "
                f"{MAX_TRAINING_BYTES:,} bytes"
            ]
        )
    text = _decode(data)
    if not text.strip():
        raise TrainingDataError(["文件为空 / the file is empty"])
    try:
        return _labelled_rows(text, for_training)
    except csv.Error as exc:
        raise TrainingDataError([f"不是有效的 CSV / not a valid CSV file: {exc}"]) from None


def _labelled_rows(text: str, for_training: bool) -> list[LabelledText]:
    # newline="" lets the csv module itself read \r\n, \n and \r line ends, as it asks.
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [(name or "").strip().lower() for name in reader.fieldnames or []]
    problems = []
    unknown = [name for name in header if name not in COLUMNS_KNOWN]
    if unknown:
        problems.append(
            f"未知列 / unknown columns: {', '.join(unknown)} (allowed: {', '.join(COLUMNS_KNOWN)})"
        )
    missing = [name for name in COLUMNS_REQUIRED if name not in header]
    if missing:
        problems.append(f"缺少列 / missing columns: {', '.join(missing)}")
    if problems:
        raise TrainingDataError(problems)
    reader.fieldnames = header
    rows, bad = [], []
    for line, row in enumerate(reader, start=2):
        title = (row.get("title") or "").strip()
        content = (row.get("content") or "").strip()
        category = (row.get("category") or "").strip()
        if not category or not (title or content):
            bad.append(line)
            continue
        rows.append(LabelledText(title, content, category))
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (" …" if len(bad) > 10 else "")
        problems.append(f"{len(bad)} 行缺少内容或类别 / rows without text or category: {shown}")
    if not rows:
        problems.append("没有数据行 / the file has no data rows")
    if for_training and rows:
        counts = Counter(r.category for r in rows)
        lonely = sorted(label for label, n in counts.items() if n < 2)
        if lonely:
            problems.append(
                "类别样本不足 (至少 2 条) / labels with a single example (need at least 2): "
                + ", ".join(lonely)
            )
        if len(counts) < 2:
            problems.append("至少需要两个类别 / at least two different categories are needed")
    if problems:
        raise TrainingDataError(problems)
    return rows


@dataclass(frozen=True)
class Prediction:
    """Categories ranked by probability (best first) and the terms behind the best one."""

    ranking: list[tuple[str, float]]
    terms: list[str]

    @property
    def category(self) -> str:
        return self.ranking[0][0]

    @property
    def confidence(self) -> float:
        return self.ranking[0][1]


class OpinionClassifier:
    """A trained model: character n-gram TF-IDF and a class-balanced linear SVM whose scores
    are calibrated to probabilities on cross-validated predictions (sigmoid per class).

    Routing one opinion runs its own small loop over the n-grams instead of sklearn's batch
    machinery, whose per-call validation costs more than the arithmetic."""

    def __init__(self, examples: list[LabelledText]) -> None:
        texts = [e.text for e in examples]
        labels = [e.category for e in examples]
        self.vectorizer = TfidfVectorizer(
            analyzer="char",
            ngram_range=(1, 3),
            min_df=2,
            sublinear_tf=True,
            preprocessor=normalize_text,
            dtype=np.float32,
        )
        features = self.vectorizer.fit_transform(texts)
        smallest = min(Counter(labels).values())
        calibrated = CalibratedClassifierCV(
            LinearSVC(class_weight="balanced"),
            cv=min(3, smallest),
            method="sigmoid",
            ensemble=False,  # calibrate on cross-validated scores, predict with one full model
        )
        calibrated.fit(features, labels, sample_weight=np.array([e.weight for e in examples]))
        fitted = calibrated.calibrated_classifiers_[0]
        self.labels: list[str] = [str(label) for label in fitted.estimator.classes_]
        self.coef = np.asarray(fitted.estimator.coef_, dtype=np.float64)
        self.intercept = np.asarray(fitted.estimator.intercept_, dtype=np.float64)
        self.sigmoid_a = np.array([c.a_ for c in fitted.calibrators], dtype=np.float64)
        self.sigmoid_b = np.array([c.b_ for c in fitted.calibrators], dtype=np.float64)
        self.idf = np.asarray(self.vectorizer.idf_, dtype=np.float64)
        self.terms = self.vectorizer.get_feature_names_out()

    def _probabilities(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities from SVM scores (rows: texts), as sklearn computes them."""
        calibrated = 1.0 / (1.0 + np.exp(self.sigmoid_a * scores + self.sigmoid_b))
        if len(self.labels) == 2:
            return np.hstack([1.0 - calibrated, calibrated])
        total = calibrated.sum(axis=1, keepdims=True)
        uniform = np.full_like(calibrated, 1.0 / len(self.labels))
        return np.divide(calibrated, total, out=uniform, where=total != 0)

    def _class_weights(self, best: int) -> np.ndarray:
        # A two-label SVM has one weight row, for the second label.
        return self.coef[0] * (1 if best == 1 else -1) if len(self.labels) == 2 else self.coef[best]

    def predict(self, title: str, content: str, top: int = 3) -> Prediction:
        """The best ``top`` categories with probabilities, and the terms behind the best."""
        grams = self.vectorizer.build_analyzer()(opinion_text(title, content))
        # Counted in C: n-grams outside the vocabulary fall under the key None.
        counts: Counter[int | None] = Counter(map(self.vectorizer.vocabulary_.get, grams))
        counts.pop(None, None)
        if not counts:
            uniform = round(1.0 / len(self.labels), 4)
            return Prediction([(label, uniform) for label in self.labels[:top]], [])
        indices = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        values = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64))) * self.idf[indices]
        values /= np.linalg.norm(values)
        scores = self.coef[:, indices] @ values + self.intercept
        probabilities = self._probabilities(scores[np.newaxis, :])[0]
        order = np.argsort(probabilities)[::-1][:top]
        ranking = [(self.labels[i], round(float(probabilities[i]), 4)) for i in order]
        weights = values * self._class_weights(int(order[0]))[indices]
        terms: list[str] = []
        for i in np.argsort(weights)[::-1]:
            if weights[i] <= 0 or len(terms) == EXPLANATION_TERMS:
                break
            term = str(self.terms[indices[i]]).strip()
            # Single characters say little to a person reading the explanation.
            if len(term) >= 2:
                terms.append(term)
        return Prediction(ranking, terms)

    def probabilities(self, examples: list[LabelledText]) -> np.ndarray:
        """Calibrated probabilities of many texts at once (rows follow ``examples``)."""
        features = self.vectorizer.transform([e.text for e in examples])
        return self._probabilities(np.asarray(features @ self.coef.T) + self.intercept)

    def predict_many(self, examples: list[LabelledText]) -> list[str]:
        best = self.probabilities(examples).argmax(axis=1)
        return [self.labels[i] for i in best]

    def to_bytes(self) -> bytes:
        return zlib.compress(pickle.dumps(self, protocol=5), 6)

    @staticmethod
    def from_bytes(data: bytes) -> "OpinionClassifier":
        # Only models this service trained and stored in its own database are loaded.
        model = pickle.loads(zlib.decompress(data))
        if not isinstance(model, OpinionClassifier):
            raise TypeError("stored model is not an OpinionClassifier")
        return model


@dataclass
class Evaluation:
    """Accuracy, macro-F1, a per-class table and the confusion matrix on labelled rows."""

    rows: int
    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    labels: list[str]
    confusion: list[list[int]]
    unknown_labels: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """What is kept with a model version (no nested arrays: the store refuses them)."""
        return {
            "rows": self.rows,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "per_class": self.per_class,
        }

    def render(self) -> str:
        """A plain-text report for the command line."""
        width = max(_columns("category 类别"), *(_columns(label) for label in self.labels)) + 2
        lines = [
            f"rows 样本数: {self.rows}",
            f"accuracy 准确率: {self.accuracy:.4f}",
            f"macro-F1: {self.macro_f1:.4f}",
        ]
        if self.unknown_labels:
            lines.append(
                "labels the model does not know 模型未学过的类别: " + ", ".join(self.unknown_labels)
            )
        lines += ["", f"{_padded('category 类别', width)} precision  recall      f1  support"]
        for label, row in self.per_class.items():
            lines.append(
                f"{_padded(label, width)}{row['precision']:9.4f} {row['recall']:7.4f} "
                f"{row['f1']:7.4f} {int(row['support']):8d}"
            )
        lines += ["", "confusion matrix 混淆矩阵 (rows: true 实际, columns: predicted 预测)"]
        for i, label in enumerate(self.labels):
            lines.append(f"{i:>3} {label}")
        lines.append("    " + "".join(f"{i:>6}" for i in range(len(self.labels))))
        for i, counts in enumerate(self.confusion):
            lines.append(f"{i:>3} " + "".join(f"{n:>6}" for n in counts))
        return "\n".join(lines)


def _columns(text: str) -> int:
    """Terminal columns: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _padded(text: str, width: int) -> str:
    return text + " " * (width - _columns(text))


def evaluate(model: OpinionClassifier, examples: list[LabelledText]) -> Evaluation:
    """Score ``model`` on labelled rows it has not seen."""
    truth = [e.category for e in examples]
    predicted = model.predict_many(examples)
    labels = sorted(set(truth) | set(model.labels))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0
    )
    present = [i for i, label in enumerate(labels) if support[i] > 0]
    return Evaluation(
        rows=len(examples),
        accuracy=round(float(accuracy_score(truth, predicted)), 4),
        macro_f1=round(float(f1_score(truth, predicted, average="macro", zero_division=0)), 4),
        per_class={
            labels[i]: {
                "precision": round(float(precision[i]), 4),
                "recall": round(float(recall[i]), 4),
                "f1": round(float(f1[i]), 4),
                "support": int(support[i]),
            }
            for i in present
        },
        labels=labels,
        confusion=confusion_matrix(truth, predicted, labels=labels).tolist(),
        unknown_labels=sorted(set(truth) - set(model.labels)),
    )
