"""The classifier: learns any label set from a CSV or XLSX, explains itself, learns from
returns, survives storage as data only, and refuses unusable files with every problem named."""

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from openpyxl import Workbook
from sklearn.feature_extraction.text import TfidfVectorizer

from services.routing.classifier import (
    BLOCKS,
    MAX_TRAINING_BYTES,
    MAX_XLSX_EXPANDED_BYTES,
    LabelledText,
    ModelFormatError,
    OpinionClassifier,
    TrainingDataError,
    evaluate,
    opinion_text,
    read_labelled,
    train_classifier,
)
from tests.routing_samples import samples, to_csv
from tools.bench import routing as bench


def read_labelled_csv(data: bytes, for_training: bool = True) -> list[LabelledText]:
    return read_labelled(data, "file.csv", for_training=for_training).rows


@pytest.fixture(scope="module")
def model() -> OpinionClassifier:
    return train_classifier(samples(20))


def test_learns_the_labels_the_csv_gives_and_explains_with_terms(model: OpinionClassifier) -> None:
    assert model.labels == ["供水", "学校", "道路"]
    prediction = model.predict("小区水管漏水", "楼下自来水管漏水好几天了")
    assert prediction.category == "供水"
    assert prediction.confidence > 0.5
    assert sorted(c for c, _ in prediction.ranking) == sorted(model.labels)
    assert [p for _, p in prediction.ranking] == sorted(
        (p for _, p in prediction.ranking), reverse=True
    )
    assert any("水" in term for term in prediction.terms)


def test_single_opinion_path_agrees_with_the_batch_path(model: OpinionClassifier) -> None:
    held_out = samples(4, seed=5)
    batch = model.probabilities(held_out)
    for row, expected in zip(held_out, batch, strict=True):
        ranking = dict(model.predict(row.title, row.content, top=3).ranking)
        for label, probability in zip(model.labels, expected, strict=True):
            assert ranking[label] == pytest.approx(probability, abs=1e-3)


def test_two_labels_work_too() -> None:
    two = train_classifier([r for r in samples(10) if r.category != "学校"])
    assert two.labels == ["供水", "道路"]
    prediction = two.predict("井盖缺失", "路口井盖缺失")
    assert prediction.category == "道路" and len(prediction.ranking) == 2
    assert sum(p for _, p in prediction.ranking) == pytest.approx(1.0, abs=1e-3)
    assert two.predict_many(samples(2, seed=3)[2:4]) == ["道路", "道路"]


def test_features_are_what_sklearn_computes(model: OpinionClassifier) -> None:
    text = opinion_text("水管漏水", "自来水管漏水，水压太低，请处理")
    indices, values = model.features(text)
    start = 0
    for block, vocabulary in zip(BLOCKS, model.vocabularies, strict=True):
        reference = TfidfVectorizer(
            analyzer=block.analyse, vocabulary=vocabulary, sublinear_tf=True
        )
        reference.idf_ = model.idf[start : start + len(vocabulary)]
        expected = reference.transform([text]).toarray()[0]
        ours = np.zeros(len(vocabulary))
        inside = (indices >= start) & (indices < start + len(vocabulary))
        ours[indices[inside] - start] = values[inside]
        assert expected.any() and ours == pytest.approx(expected, abs=1e-9)
        start += len(vocabulary)


def test_survives_storage_as_bytes(model: OpinionClassifier) -> None:
    restored = OpinionClassifier.from_bytes(model.to_bytes())
    assert restored.predict("井盖缺失", "路口井盖缺失很危险") == model.predict(
        "井盖缺失", "路口井盖缺失很危险"
    )


class _Planted:
    """Unpickling this calls list.append on a module-level list: proof that code ran."""

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (RAN.append, ("planted code ran",))


RAN: list[str] = []


def _npz(**arrays: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.savez(out, **arrays)  # type: ignore[arg-type]
    return out.getvalue()


def test_stored_bytes_that_are_not_a_model_are_refused_without_running(
    model: OpinionClassifier,
) -> None:
    good = np.load(io.BytesIO(model.to_bytes()))
    arrays = {name: good[name] for name in good.files}
    hostile = {
        "a pickle": pickle.dumps(_Planted()),
        "an object array": _npz(**{**arrays, "bias": np.array([_Planted()], dtype=object)}),
        "a wrong shape": _npz(**{**arrays, "coef": arrays["coef"][:, :-1]}),
        "a missing array": _npz(**{k: v for k, v in arrays.items() if k != "idf"}),
        "not even a zip": b"\x00" * 100,
    }
    for name, data in hostile.items():
        with pytest.raises(ModelFormatError):
            OpinionClassifier.from_bytes(data)
        assert RAN == [], name


def test_a_return_teaches_only_that_its_category_is_wrong() -> None:
    drain = ("雨水篦子堵塞", "水管旁边的雨水篦子被树叶堵塞，路面积水")
    before = train_classifier(samples(15)).predict(*drain).ranking
    returns = [LabelledText(*drain, category=before[0][0], weight=3.0, rejected=True)] * 3
    after = dict(train_classifier([*samples(15), *returns]).predict(*drain).ranking)
    assert after[before[0][0]] < before[0][1]
    assert set(after) == {"供水", "道路", "学校"}


def test_extra_columns_are_ignored_and_the_label_column_is_chosen() -> None:
    data = (
        "编号,title,content,category,kind,sentiment\n"
        "1,水管,漏水,供水,投诉求助,负面\n2,路面,坑洼,道路,投诉求助,负面\n"
        "3,水压,太低,供水,咨询,中性\n4,井盖,缺失,道路,建言,中性\n"
    ).encode()
    by_category = read_labelled(data, "export.csv")
    assert [r.category for r in by_category.rows] == ["供水", "道路", "供水", "道路"]
    assert by_category.ignored_columns == ["编号", "kind", "sentiment"]
    by_kind = read_labelled(data, "export.csv", label_column="Kind", for_training=False)
    assert [r.category for r in by_kind.rows] == ["投诉求助", "投诉求助", "咨询", "建言"]
    assert by_kind.ignored_columns == ["编号", "category", "sentiment"]
    with pytest.raises(TrainingDataError, match="missing columns: channel"):
        read_labelled(data, "export.csv", label_column="channel")


def _xlsx(rows: list[list[object]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_reads_xlsx_like_csv() -> None:
    header: list[object] = ["title", "content", "category", "time"]
    rows: list[list[object]] = [
        ["水管", "漏水", "供水", 2020],
        [None, None, None],
        ["路面", "坑洼", "道路", None],
    ]
    data = _xlsx([header, *rows, ["水压", 12, "供水", None], ["井盖", "缺失", "道路", None]])
    read = read_labelled(data, "导出.XLSX")
    assert [(r.title, r.content, r.category) for r in read.rows][:3] == [
        ("水管", "漏水", "供水"),
        ("路面", "坑洼", "道路"),
        ("水压", "12", "供水"),
    ]
    assert read.ignored_columns == ["time"]
    # Recognised by content too, whatever the file is called.
    assert len(read_labelled(data, "upload").rows) == 4


def test_xlsx_that_expands_too_far_or_is_broken_is_refused() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/sharedStrings.xml", b" " * (MAX_XLSX_EXPANDED_BYTES + 1))
    with pytest.raises(TrainingDataError, match="expands to"):
        read_labelled(out.getvalue(), "bomb.xlsx")
    with pytest.raises(TrainingDataError, match="not a readable XLSX"):
        read_labelled(b"PK\x03\x04 broken", "broken.xlsx")


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


def test_bench_scores_both_on_the_same_splits_and_skips_without_the_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = bench.compare(samples(10), None)
    assert len(result["splits"]) == bench.SPLITS
    deltas = [s["ours"] - s["baseline"] for s in result["splits"]]
    assert result["delta_min"] == pytest.approx(min(deltas), abs=1e-4)
    assert 0 < result["baseline_mean"] <= 1 and 0 < result["ours_mean"] <= 1
    monkeypatch.setattr(bench, "DATA_FILE", tmp_path / "absent.csv")
    assert "not found" in bench.run(tmp_path)["skipped"]
