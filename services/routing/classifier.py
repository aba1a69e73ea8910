"""The opinion classifier: reads a labelled CSV or XLSX, trains, predicts with a confidence and the
terms that drove it, evaluates on held-out rows. Pure computation, no database or network.

Features are three TF-IDF blocks, each L2-normalised on its own: character 1–3-grams of the
message, its words (``rjieba`` segmentation, a dictionary shipped in the package), and character
1–3-grams of its opening (the title, or the first sentence where the title was merged into the
content). No hand-made rules: it learns whatever label set the file has. Per label, a
class-balanced linear SVM is trained on features scaled by their naive-Bayes log-count ratio
(NB-SVM, Wang & Manning 2012), which suits a few hundred rows per label better than plain
TF-IDF. Cross-validated scores on the training rows then fit a sigmoid per label, so
``confidence`` is a probability the triage threshold can be set against, and a per-label prior
weight on those probabilities that raises macro-F1 (shrunk halfway). docs/routing.md records what
each part gained.

A trained model is plain arrays and JSON (``to_bytes``): loading one from the store cannot run
code, whoever wrote it."""

import csv
import io
import json
import os
import unicodedata
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rjieba
from openpyxl import load_workbook
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.svm import LinearSVC

# A training file is at most this big; larger ones are refused before parsing.
MAX_TRAINING_BYTES = 30_000_000
# What an XLSX training file may expand to (an XLSX is a zip archive of XML).
MAX_XLSX_EXPANDED_BYTES = 150_000_000
# The classifier reads the opening of each message (title first): it names the matter, while
# the rest of a long letter is narrative that dilutes it and costs time. Chosen among 600,
# 1,000, 1,500 and all 4,100 on the development splits: 600 scored best and is the fastest.
MAX_TEXT_CHARS = 600
# The opening read as a block of its own: the title, or the start of the content.
OPENING_CHARS = 100
COLUMNS_TEXT = ("title", "content")
DEFAULT_LABEL_COLUMN = "category"
# Words shown as the explanation of a prediction.
EXPLANATION_TERMS = 5
# Naive-Bayes smoothing of the per-label feature ratios, the folds of the cross-validation that
# fits the sigmoids and biases, the bias grid (log-probability offsets) and its shrinkage.
NB_ALPHA = 0.1
CV_FOLDS = 3
BIAS_STEPS = np.linspace(-0.5, 0.5, 21)
BIAS_SHRINK = 0.5
# liblinear's stopping tolerance: 1e-2 instead of its 1e-4 takes a third of the training time
# and changed no prediction on the development splits (docs/routing.md).
SVM_TOL = 1e-2
MODEL_FORMAT = "minyi-nbsvm-1"


class TrainingDataError(ValueError):
    """The training or evaluation file cannot be used; ``problems`` says why, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class ModelFormatError(ValueError):
    """Stored model bytes are not a model this code wrote; nothing in them was run."""


@dataclass(frozen=True)
class LabelledText:
    """A text with its label; ``rejected`` means the text is known *not* to be ``category``
    (a department's 退回), which trains only that label's model."""

    title: str
    content: str
    category: str
    weight: float = 1.0
    rejected: bool = False

    @property
    def text(self) -> str:
        return opinion_text(self.title, self.content)


def opinion_text(title: str, content: str) -> str:
    """The text the classifier reads: title and content, as one string."""
    return f"{title}。{content}"[:MAX_TEXT_CHARS]


def normalize_text(text: str) -> str:
    """Full-width/half-width forms folded (ＡＢＣ１２ → abc12) so offices' input styles agree."""
    return unicodedata.normalize("NFKC", text).lower()


@dataclass
class LabelledFile:
    """The rows of a training or evaluation file and the columns it had that were not read."""

    rows: list[LabelledText]
    ignored_columns: list[str]


def _decode(data: bytes) -> str:
    # Offices' Excel saves CSV as UTF-8 with BOM or as GB18030 (GBK).
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise TrainingDataError(["文件编码无法识别 / file is neither UTF-8 nor GB18030 text"])


def _csv_table(data: bytes) -> Iterator[list[str]]:
    text = _decode(data)
    if not text.strip():
        raise TrainingDataError(["文件为空 / the file is empty"])
    # newline="" lets the csv module itself read \r\n, \n and \r line ends, as it asks.
    try:
        yield from csv.reader(io.StringIO(text, newline=""))
    except csv.Error as exc:
        raise TrainingDataError([f"不是有效的 CSV / not a valid CSV file: {exc}"]) from None


def _xlsx_table(data: bytes) -> Iterator[list[str]]:
    unreadable = "不是有效的 XLSX 文件 / not a readable XLSX file"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            expanded = sum(item.file_size for item in archive.infolist())
    except zipfile.BadZipFile:
        raise TrainingDataError([unreadable]) from None
    if expanded > MAX_XLSX_EXPANDED_BYTES:
        raise TrainingDataError(
            [
                f"XLSX 解压后过大 / XLSX expands to {expanded:,} bytes, at most "
                f"{MAX_XLSX_EXPANDED_BYTES:,}"
            ]
        )
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            for row in book.worksheets[0].iter_rows(values_only=True):
                yield ["" if value is None else str(value) for value in row]
        finally:
            book.close()
    except Exception as exc:
        # Whatever a broken or hostile file makes the parser raise, it is the file's fault.
        raise TrainingDataError([f"{unreadable}: {exc}"]) from None


def read_labelled(
    data: bytes,
    filename: str = "",
    *,
    label_column: str = DEFAULT_LABEL_COLUMN,
    for_training: bool = True,
) -> LabelledFile:
    """Parse a CSV or XLSX (by name ``.xlsx`` or content) with ``content`` and the label
    column, ``title`` optional; any other column is ignored and listed in the result.

    Raises TrainingDataError naming every problem: empty or huge file, missing columns, rows
    without text or label, and (for training) labels with fewer than two examples."""
    if len(data) > MAX_TRAINING_BYTES:
        raise TrainingDataError(
            [
                f"文件过大 / file too large: {len(data):,} bytes, at most "
                f"{MAX_TRAINING_BYTES:,} bytes"
            ]
        )
    xlsx = filename.lower().endswith(".xlsx") or data.startswith(b"PK\x03\x04")
    table = _xlsx_table(data) if xlsx else _csv_table(data)
    return _labelled_rows(table, label_column.strip().lower(), for_training)


def _labelled_rows(table: Iterator[list[str]], label: str, for_training: bool) -> LabelledFile:
    header = [name.strip().lower() for name in next(table, [])]
    missing = [name for name in ("content", label) if name not in header]
    if missing:
        raise TrainingDataError([f"缺少列 / missing columns: {', '.join(missing)}"])
    used = {"title", "content", label}
    ignored = [name for name in dict.fromkeys(header) if name and name not in used]
    columns = {name: i for i, name in enumerate(header) if name in used}
    rows, bad, problems = [], [], []
    for line, cells in enumerate(table, start=2):
        if not any(cell.strip() for cell in cells):
            continue
        values = {name: cells[i].strip() if i < len(cells) else "" for name, i in columns.items()}
        title, content, category = values.get("title", ""), values["content"], values[label]
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
        lonely = sorted(name for name, n in counts.items() if n < 2)
        if lonely:
            problems.append(
                "类别样本不足 (至少 2 条) / labels with a single example (need at least 2): "
                + ", ".join(lonely)
            )
        if len(counts) < 2:
            problems.append("至少需要两个类别 / at least two different categories are needed")
    if problems:
        raise TrainingDataError(problems)
    return LabelledFile(rows, ignored)


_char_grams = TfidfVectorizer(
    analyzer="char", ngram_range=(1, 3), preprocessor=normalize_text
).build_analyzer()


def _words(text: str) -> list[str]:
    return [word for word in rjieba.cut(normalize_text(text)) if word.strip()]


@dataclass(frozen=True)
class Block:
    """One feature block: which part of the text, cut into which terms."""

    name: str
    chars: int
    terms: Callable[[str], list[str]]

    def analyse(self, text: str) -> list[str]:
        return self.terms(text[: self.chars])


BLOCKS = (
    Block("chars", MAX_TEXT_CHARS, _char_grams),
    Block("words", MAX_TEXT_CHARS, _words),
    Block("opening", OPENING_CHARS, _char_grams),
)


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
    """A trained model (see the module docstring): per block a vocabulary into one feature
    space with its idf; per label a weight row, an intercept, a sigmoid and a bias (a log prior
    weight on the calibrated probability).

    Texts are turned into features by a small loop over their terms rather than sklearn's batch
    machinery, whose per-call validation costs more than the arithmetic for one opinion; the
    loop computes what ``TfidfVectorizer(sublinear_tf=True)`` does (a unit test checks)."""

    def __init__(
        self,
        labels: list[str],
        vocabularies: list[list[str]],
        arrays: dict[str, np.ndarray],
    ) -> None:
        self.labels = labels
        self.vocabularies = vocabularies
        self.terms = [term for vocabulary in vocabularies for term in vocabulary]
        offsets = np.cumsum([0, *map(len, vocabularies)])
        self.index = [
            {term: int(offset) + i for i, term in enumerate(vocabulary)}
            for vocabulary, offset in zip(vocabularies, offsets, strict=False)
        ]
        self.idf = arrays["idf"]
        self.coef = arrays["coef"]
        self.intercept = arrays["intercept"]
        self.bias = arrays["bias"]
        self.sigmoid_a = arrays["sigmoid_a"]
        self.sigmoid_b = arrays["sigmoid_b"]

    def features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The non-zero features of ``text``: indices and values, each block L2-normalised."""
        indices, values = [], []
        for block, index in zip(BLOCKS, self.index, strict=True):
            # Counted in C: terms outside the vocabulary fall under the key None.
            counts: Counter[int | None] = Counter(map(index.get, block.analyse(text)))
            counts.pop(None, None)
            if not counts:
                continue
            found = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            weight = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64))) * self.idf[
                found
            ]
            indices.append(found)
            values.append(weight / np.linalg.norm(weight))
        if not indices:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        return np.concatenate(indices), np.concatenate(values)

    def _probabilities(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities from scores (rows: texts), normalised to sum to one."""
        calibrated = np.exp(self.bias) / (1.0 + np.exp(self.sigmoid_a * scores + self.sigmoid_b))
        total = calibrated.sum(axis=1, keepdims=True)
        uniform = np.full_like(calibrated, 1.0 / len(self.labels))
        return np.divide(calibrated, total, out=uniform, where=total != 0)

    def predict(self, title: str, content: str, top: int = 3) -> Prediction:
        """The best ``top`` categories with probabilities, and the terms behind the best."""
        indices, values = self.features(opinion_text(title, content))
        if not len(indices):
            uniform = round(1.0 / len(self.labels), 4)
            return Prediction([(label, uniform) for label in self.labels[:top]], [])
        scores = self.coef[:, indices] @ values + self.intercept
        probabilities = self._probabilities(scores[np.newaxis, :])[0]
        order = np.argsort(probabilities)[::-1][:top]
        ranking = [(self.labels[i], round(float(probabilities[i]), 4)) for i in order]
        weights = values * self.coef[order[0], indices]
        terms: list[str] = []
        for i in np.argsort(weights)[::-1]:
            term = self.terms[indices[i]].strip()
            if weights[i] <= 0 or len(terms) == EXPLANATION_TERMS:
                break
            # Single characters say little to a person reading the explanation.
            if len(term) >= 2 and term not in terms:
                terms.append(term)
        return Prediction(ranking, terms)

    def probabilities(self, examples: list[LabelledText]) -> np.ndarray:
        """Calibrated probabilities of many texts at once (rows follow ``examples``)."""
        rows = [self.features(e.text) for e in examples]
        matrix = sparse.csr_matrix(
            (
                np.concatenate([values for _, values in rows]),
                np.concatenate([indices for indices, _ in rows]),
                np.cumsum([0, *(len(indices) for indices, _ in rows)]),
            ),
            shape=(len(rows), self.coef.shape[1]),
        )
        return self._probabilities(np.asarray(matrix @ self.coef.T) + self.intercept)

    def predict_many(self, examples: list[LabelledText]) -> list[str]:
        best = self.probabilities(examples).argmax(axis=1)
        return [self.labels[i] for i in best]

    def to_bytes(self) -> bytes:
        """The model as an ``.npz`` archive of numeric arrays and one JSON header: no code."""
        header = {"format": MODEL_FORMAT, "labels": self.labels, "vocabularies": self.vocabularies}
        out = io.BytesIO()
        np.savez_compressed(
            out,
            header=np.frombuffer(json.dumps(header, ensure_ascii=False).encode(), dtype=np.uint8),
            idf=self.idf,
            coef=self.coef,
            intercept=self.intercept,
            bias=self.bias,
            sigmoid_a=self.sigmoid_a,
            sigmoid_b=self.sigmoid_b,
        )
        return out.getvalue()

    @staticmethod
    def from_bytes(data: bytes) -> "OpinionClassifier":
        """Read what ``to_bytes`` wrote. Raises ModelFormatError for anything else — a pickle,
        an object array, a wrong shape — without running any of it (``allow_pickle=False``)."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in stored.files}
            header = json.loads(arrays.pop("header").tobytes())
            labels, vocabularies = header["labels"], header["vocabularies"]
            assert header["format"] == MODEL_FORMAT, f"format {header['format']!r}"
            assert all(isinstance(label, str) for label in labels), "labels"
            assert len(vocabularies) == len(BLOCKS), "blocks"
            assert all(isinstance(t, str) for v in vocabularies for t in v), "vocabularies"
            width = sum(map(len, vocabularies))
            shapes = {"idf": (width,), "coef": (len(labels), width)}
            for name in ("intercept", "bias", "sigmoid_a", "sigmoid_b"):
                shapes[name] = (len(labels),)
            assert set(arrays) == set(shapes), "arrays"
            for name, shape in shapes.items():
                assert arrays[name].shape == shape, f"{name} shape {arrays[name].shape}"
                assert arrays[name].dtype.kind == "f", f"{name} dtype {arrays[name].dtype}"
        except (ValueError, OSError, EOFError, KeyError, TypeError, AssertionError) as exc:
            # np.load refuses pickled and object data itself (ValueError), before running any.
            raise ModelFormatError(f"stored model is not a {MODEL_FORMAT} model: {exc}") from None
        return OpinionClassifier(labels, vocabularies, arrays)


def _fit_block(block: Block, texts: list[str]) -> tuple[list[str], np.ndarray, sparse.csr_matrix]:
    """The vocabulary (terms in at least two texts), idf and features of one block."""
    vectorizer = TfidfVectorizer(
        analyzer=block.analyse, min_df=2, sublinear_tf=True, dtype=np.float64
    )
    try:
        features = vectorizer.fit_transform(texts)
    except ValueError:  # no term occurs twice: the block adds nothing
        return [], np.zeros(0), sparse.csr_matrix((len(texts), 0))
    return [str(t) for t in vectorizer.get_feature_names_out()], vectorizer.idf_, features


def _nb_ratio(features: sparse.csr_matrix, target: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Per feature, log of how much more it weighs in the label's texts than in the others'."""
    weighted = features.multiply(weight[:, np.newaxis]).tocsr()
    inside = NB_ALPHA + np.asarray(weighted[target].sum(axis=0)).ravel()
    outside = NB_ALPHA + np.asarray(weighted[~target].sum(axis=0)).ravel()
    return np.log(inside / inside.sum()) - np.log(outside / outside.sum())


def _one_vs_rest(
    features: sparse.csr_matrix,
    category: np.ndarray,
    rejected: np.ndarray,
    weight: np.ndarray,
    labels: list[str],
) -> tuple[np.ndarray, np.ndarray]:
    """Per label an NB-scaled, class-balanced linear SVM; its weights folded back onto the
    unscaled features. A rejected row is a negative for its own label only. The labels are
    fitted in threads: liblinear runs without the GIL, so each core takes one."""

    def fit(label: str) -> tuple[np.ndarray, float]:
        used = ~rejected | (category == label)
        target = (category[used] == label) & ~rejected[used]
        rows, weights = features[used], weight[used]
        ratio = _nb_ratio(rows, target, weights)
        scaled = rows.multiply(ratio).tocsr()
        # A fixed seed: the same rows always give the same model.
        svm = LinearSVC(class_weight="balanced", tol=SVM_TOL, random_state=0)
        svm.fit(scaled, target, sample_weight=weights)
        return ratio * svm.coef_[0], float(svm.intercept_[0])

    with ThreadPoolExecutor(os.cpu_count()) as pool:
        fitted = list(pool.map(fit, labels))
    return np.array([coef for coef, _ in fitted]), np.array([b for _, b in fitted])


def _macro_f1(truth: np.ndarray, predicted: np.ndarray, labels: int) -> float:
    hits = np.bincount(truth[truth == predicted], minlength=labels)
    total = np.bincount(truth, minlength=labels) + np.bincount(predicted, minlength=labels)
    return float(np.mean(2 * hits[total > 0] / total[total > 0]))


def _macro_f1_bias(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-label offsets to ``scores`` (log-probabilities) that raise macro-F1 of the argmax
    (two rounds of coordinate search over BIAS_STEPS)."""
    labels = scores.shape[1]
    bias = np.zeros(labels)
    best = _macro_f1(truth, scores.argmax(axis=1), labels)
    for _ in range(2):
        for k in range(labels):
            for step in BIAS_STEPS:
                trial = bias.copy()
                trial[k] = step
                score = _macro_f1(truth, (scores + trial).argmax(axis=1), labels)
                if score > best + 1e-9:
                    best, bias = score, trial
    return bias


def _sigmoid(scores: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Platt scaling: ``a, b`` with P(label) = 1 / (1 + exp(a·score + b))."""
    fitted = LogisticRegression().fit(scores.reshape(-1, 1), target)
    return -float(fitted.coef_[0, 0]), -float(fitted.intercept_[0])


def train_classifier(examples: list[LabelledText]) -> OpinionClassifier:
    """Train on labelled rows (at least two labels with two rows each)."""
    texts = [e.text for e in examples]
    fitted = [_fit_block(block, texts) for block in BLOCKS]
    features = sparse.hstack([block_features for _, _, block_features in fitted]).tocsr()
    if features.shape[1] == 0:
        raise TrainingDataError(["训练文本没有共同的字词 / the texts share no terms"])
    category = np.array([e.category for e in examples])
    rejected = np.array([e.rejected for e in examples])
    weight = np.array([e.weight for e in examples])
    labels = sorted({e.category for e in examples if not e.rejected})
    plain = np.flatnonzero(~rejected)
    truth = np.searchsorted(labels, category[plain])
    folds = min(CV_FOLDS, int(np.bincount(truth).min()))
    scores = np.zeros((len(plain), len(labels)))
    splitter = StratifiedKFold(folds, shuffle=True, random_state=0)
    for fit, held in splitter.split(plain, truth):
        # Rejections are only ever training rows: they carry no label to score against.
        rows = np.concatenate([plain[fit], np.flatnonzero(rejected)])
        coef, intercept = _one_vs_rest(
            features[rows], category[rows], rejected[rows], weight[rows], labels
        )
        scores[held] = features[plain[held]] @ coef.T + intercept
    sigmoids = np.array([_sigmoid(scores[:, k], truth == k) for k in range(len(labels))])
    calibrated = 1.0 / (1.0 + np.exp(sigmoids[:, 0] * scores + sigmoids[:, 1]))
    probabilities = calibrated / calibrated.sum(axis=1, keepdims=True)
    bias = BIAS_SHRINK * _macro_f1_bias(np.log(probabilities), truth)
    coef, intercept = _one_vs_rest(features, category, rejected, weight, labels)
    arrays = {
        "idf": np.concatenate([idf for _, idf, _ in fitted]),
        "coef": coef.astype(np.float32),
        "intercept": intercept,
        "bias": bias,
        "sigmoid_a": sigmoids[:, 0],
        "sigmoid_b": sigmoids[:, 1],
    }
    return OpinionClassifier(labels, [vocabulary for vocabulary, _, _ in fitted], arrays)


def full_text(example: LabelledText) -> str:
    """All of title and content: the baseline reads whole messages."""
    return f"{example.title}。{example.content}"


def train_baseline(examples: list[LabelledText]) -> Pipeline:
    """The reference every result is compared with: TF-IDF over character 1–3-grams (sublinear
    tf, min_df 2) and a class-balanced linear SVM, on the whole message."""
    model = make_pipeline(
        TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True),
        LinearSVC(class_weight="balanced"),
    )
    plain = [e for e in examples if not e.rejected]
    return model.fit([full_text(e) for e in plain], [e.category for e in plain])


def baseline_macro_f1(train: list[LabelledText], test: list[LabelledText]) -> float:
    """The baseline trained on ``train``, scored on ``test``."""
    predicted = train_baseline(train).predict([full_text(e) for e in test])
    truth = [e.category for e in test]
    return round(float(f1_score(truth, predicted, average="macro", zero_division=0)), 4)


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
