"""The classifier: learns any label set from a CSV, explains itself, survives storage, and
refuses unusable training files with every problem named."""

import pytest

from services.routing.classifier import (
    MAX_TRAINING_BYTES,
    LabelledText,
    OpinionClassifier,
    TrainingDataError,
    evaluate,
    read_labelled_csv,
)
from tests.routing_samples import samples, to_csv


@pytest.fixture(scope="module")
def model() -> OpinionClassifier:
    return OpinionClassifier(samples(20))


def test_learns_the_labels_the_csv_gives_and_explains_with_terms(model: OpinionClassifier) -> None:
    assert model.labels == ["供水", "学校", "道路"]
    prediction = model.predict("小区水管漏水", "楼下自来水管漏水好几天了")
    assert prediction.category == "供水"
    assert prediction.confidence > 0.5
    assert [c for c, _ in prediction.ranking] == sorted(model.labels, key=lambda c: c != "供水")[:3]
    assert any("水" in term for term in prediction.terms)


def test_single_opinion_path_agrees_with_the_batch_path(model: OpinionClassifier) -> None:
    held_out = samples(4, seed=5)
    batch = model.probabilities(held_out)
    for row, expected in zip(held_out, batch, strict=True):
        ranking = dict(model.predict(row.title, row.content, top=3).ranking)
        for label, probability in zip(model.labels, expected, strict=True):
            assert ranking[label] == pytest.approx(probability, abs=1e-3)


def test_two_labels_work_too() -> None:
    two = OpinionClassifier([r for r in samples(10) if r.category != "学校"])
    assert two.labels == ["供水", "道路"]
    prediction = two.predict("井盖缺失", "路口井盖缺失")
    assert prediction.category == "道路" and len(prediction.ranking) == 2
    assert sum(p for _, p in prediction.ranking) == pytest.approx(1.0, abs=1e-3)
    assert two.predict_many(samples(2, seed=3)[2:4]) == ["道路", "道路"]


def test_survives_storage_as_bytes(model: OpinionClassifier) -> None:
    restored = OpinionClassifier.from_bytes(model.to_bytes())
    assert restored.predict("井盖缺失", "路口井盖缺失很危险") == model.predict(
        "井盖缺失", "路口井盖缺失很危险"
    )


def test_evaluation_reports_accuracy_macro_f1_per_class_and_confusion(
    model: OpinionClassifier,
) -> None:
    held_out = [*samples(5, seed=9), LabelledText("新类", "完全不同的东西", "其他")]
    report = evaluate(model, held_out)
    assert report.rows == 16
    assert report.per_class["供水"]["support"] == 5
    assert report.unknown_labels == ["其他"]
    assert len(report.confusion) == len(report.labels) == 4
    assert 0.5 < report.macro_f1 < 1.0
    text = report.render()
    assert "macro-F1" in text and "confusion matrix" in text


def test_reads_the_dev_file_layout_and_gbk() -> None:
    csv = "id,title,content,category,time\n1,,标题并入内容,甲,\n2,标题,内容,甲,2020-01-01\n"
    rows = read_labelled_csv(csv.encode("gb18030"), for_training=False)
    assert [(r.title, r.content, r.category) for r in rows] == [
        ("", "标题并入内容", "甲"),
        ("标题", "内容", "甲"),
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "empty"),
        (b"title,content,category\n", "no data rows"),
        (to_csv(samples(2), ("title", "body", "label")), "unknown columns: body, label"),
        (to_csv(samples(2), ("title", "body", "label")), "missing columns: content, category"),
        (to_csv([*samples(2), LabelledText("孤例", "只有一条", "孤类")]), "single example"),
        (b"title,content,category\n,,x\na,b,\n", "rows without text or category: 2, 3"),
        (b"x" * (MAX_TRAINING_BYTES + 1), "too large"),
    ],
)
def test_unusable_training_files_are_refused_naming_the_problem(data: bytes, expected: str) -> None:
    with pytest.raises(TrainingDataError) as refused:
        read_labelled_csv(data)
    assert expected in str(refused.value)


def test_stray_carriage_returns_are_a_refusal_not_a_crash() -> None:
    # Found by the API fuzz test: csv raised "new-line character seen in unquoted field".
    with pytest.raises(TrainingDataError):
        read_labelled_csv(b"ti\rtle,content\n", for_training=False)
    rows = read_labelled_csv(b"title,content,category\r\na,b,c\r\nd,e,c\r\n", for_training=False)
    assert [r.category for r in rows] == ["c", "c"]
