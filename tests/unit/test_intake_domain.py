"""Intake's pure parts: the duplicate index, the opinion's 附议/并案/拆分/编辑 rules, and reading
and writing sheets."""

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
from openpyxl import Workbook, load_workbook

from services.intake import sheets
from services.intake.domain import (
    Opinion,
    OpinionError,
    OpinionStatus,
    OpinionSubmission,
    tracking_secret,
)
from services.intake.duplicates import EXPIRE_EVERY, DuplicateIndex
from shared.events import (
    AssignmentSigned,
    CaseClosed,
    FeedbackReceived,
    OpinionAssigned,
    OpinionBriefed,
    OpinionMerged,
    OpinionReceived,
    OpinionSplit,
    OpinionSupported,
    OpinionWithdrawn,
    Rating,
)
from shared.files import FileRef
from shared.keys import KeyRing

NOW = datetime(2026, 3, 1, tzinfo=UTC)
NOISE = (
    "和平路公交站台顶棚破损漏雨，候车乘客淋雨，老人孩子尤其不便。"
    "这个问题已经持续了两个多月，附近居民多次反映，希望交通部门尽快维修。"
)
REWORDED = (
    "再次反映：和平路公交站台顶棚破损漏雨，候车乘客淋雨，老人孩子尤其不便。"
    "这个情况已经持续了两个多月，附近住户多次反映，恳请交通部门早日维修。"
)
OTHER = "幸福小区电梯频繁故障，业主多次被困，物业公司拖延维修，请住建部门督促整改。"


def index() -> DuplicateIndex:
    found = DuplicateIndex(threshold=0.4, window=timedelta(days=30))
    found.add("a", NOISE, "示范区", "和平街道", NOW - timedelta(days=3))
    found.add("b", OTHER, "示范区", "幸福街道", NOW - timedelta(days=3))
    return found


def test_a_reworded_complaint_in_the_same_street_is_found() -> None:
    match = index().find(REWORDED, "示范区", "和平街道", NOW)
    assert match is not None and match.opinion_id == "a" and match.similarity >= 0.4
    assert index().find(REWORDED, "示范区", None, NOW) is not None  # no street: district


def test_an_opinion_without_a_street_matches_any_street_of_its_district() -> None:
    found = index()
    found.add("c", NOISE, "示范区", None, NOW - timedelta(days=1))
    match = found.find(REWORDED, "示范区", "幸福街道", NOW)
    assert match is not None and match.opinion_id == "c"
    found.remove("c")
    assert found.find(REWORDED, "示范区", "幸福街道", NOW) is None


def test_other_text_street_district_or_an_old_opinion_is_not_a_duplicate() -> None:
    found = index()
    assert found.find("区图书馆周末开放时间太短，希望延长到晚上九点。", "示范区", None, NOW) is None
    assert found.find(REWORDED, "示范区", "幸福街道", NOW) is None
    assert found.find(REWORDED, "邻区", "和平街道", NOW) is None
    assert found.find(REWORDED, "示范区", "和平街道", NOW + timedelta(days=28)) is None


def test_a_removed_opinion_is_no_longer_found() -> None:
    found = index()
    found.remove("a")
    found.remove("a")
    assert found.find(REWORDED, "示范区", "和平街道", NOW) is None
    assert len(found) == 1 and "a" not in found


def test_removing_one_opinion_keeps_the_others_findable_under_their_own_ids() -> None:
    found = DuplicateIndex(threshold=0.4, window=timedelta(days=30))
    texts = {f"o{i}": f"{OTHER}第{i}号楼，{NOISE[: 20 + 3 * i]}" for i in range(5)}
    for opinion_id, text in texts.items():
        found.add(opinion_id, text, "示范区", f"街道{opinion_id}", NOW - timedelta(days=1))
    found.remove("o0")  # the last row moves into its place
    found.remove("o2")
    for opinion_id in ("o1", "o3", "o4"):
        match = found.find(texts[opinion_id], "示范区", f"街道{opinion_id}", NOW)
        assert match is not None and match.opinion_id == opinion_id and match.similarity == 1.0
    assert found.find(texts["o0"], "示范区", "街道o0", NOW) is None
    assert len(found) == 3


def test_the_index_is_bounded_by_its_window_and_its_size() -> None:
    found = DuplicateIndex(threshold=0.4, window=timedelta(days=30), max_entries=1500)
    old = NOW - timedelta(days=40)
    for i in range(EXPIRE_EVERY - 1):
        found.add(f"old{i}", f"{OTHER}{i}", "示范区", None, old)
    assert len(found) == EXPIRE_EVERY - 1  # dropped only every EXPIRE_EVERY additions
    found.add("new0", NOISE, "示范区", None, NOW)
    assert len(found) == 1 and "new0" in found  # out of the window
    for i in range(1, 2000):
        found.add(f"new{i}", f"{OTHER}{i}", "邻区", None, NOW + timedelta(seconds=i))
    assert len(found) <= 1500
    assert "new1999" in found and "new0" not in found  # the earliest received went first


def submission(**changes: object) -> OpinionSubmission:
    return OpinionSubmission.model_validate(
        {
            "title": "站台破损",
            "content": NOISE,
            "channel": "走访",
            "submitter": {"kind": "群众", "name": "张三", "phone": "13912345678"},
            "location": {"district": "示范区", "street": "和平街道"},
            **changes,
        }
    )


def opinion(opinion_id: str, number: int) -> Opinion:
    return Opinion(
        id=opinion_id,
        tracking_no=f"SQ-2026-{number:06d}",
        office_id="office-a",
        received_at=NOW,
        submission=submission(),
    )


def test_support_merge_split_and_edit() -> None:
    case, item, other = opinion("case", 1), opinion("item", 2), opinion("other", 3)
    [received] = case.receive()
    assert isinstance(received, OpinionReceived) and case.routed
    other.receive()

    [supported] = item.support(case, 0.8, NOW)
    assert isinstance(supported, OpinionSupported) and supported.opinion_id == "case"
    assert item.status == OpinionStatus.SUPPORTING and item.joined_to == "case"
    # No department holds it yet: counted, nobody to brief; counted once.
    assert case.add_supporter(item, "附议", 0.8, NOW) == []
    assert case.add_supporter(item, "附议", 0.8, NOW) is None

    with pytest.raises(OpinionError):
        case.merge_into(other, "编辑甲", NOW)  # it has a supporter
    [merged] = other.merge_into(case, "编辑甲", NOW)
    assert isinstance(merged, OpinionMerged) and merged.into_tracking_no == case.tracking_no
    with pytest.raises(OpinionError):
        other.merge_into(case, "编辑甲", NOW)  # already merged

    # Split: a never-routed supporter now becomes work for routing; a merged case becomes
    # work again for the departments that held it (followup restores their assignments).
    assert [type(e) for e in item.split("编辑甲", NOW)] == [OpinionReceived]
    [split] = other.split("编辑甲", NOW)
    assert isinstance(split, OpinionSplit) and split.from_id == "case"
    assert other.status == OpinionStatus.OPEN
    with pytest.raises(OpinionError):
        item.split("编辑甲", NOW)

    item.edit(submission(title="和平路站台顶棚破损"), "编辑甲", "规范标题", NOW)
    assert item.submission.title == "和平路站台顶棚破损"
    assert [(v.number, v.submission.title) for v in item.versions] == [(1, "站台破损")]


def test_tracking_codes_differ_by_number_and_secret() -> None:
    s, t = KeyRing("tracking", "s"), KeyRing("tracking", "t")
    assert tracking_secret(s, "SQ-2026-000001") != tracking_secret(s, "SQ-2026-000002")
    assert tracking_secret(s, "SQ-2026-000001") != tracking_secret(t, "SQ-2026-000001")


def xlsx(rows: list[list[Any]]) -> bytes:
    book = Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


HEADER = ["标题", "内容", "来源渠道", "提交人", "联系电话", "所在街道", "紧急程度"]


def test_rows_are_read_with_chinese_headers_and_bad_cells_reported() -> None:
    data = xlsx(
        [
            HEADER,
            ["路灯不亮", "幸福路路灯一周不亮", "接待日", "王五", 13800001111, "幸福街道", "紧急"],
            [None, None, None, None, None, None, None],
            ["", "缺标题", "微信", "赵六", "abc", "幸福街道", "很急"],
        ]
    )
    header, rows = sheets.read_table("意见.xlsx", data)
    parsed, problems = sheets.parse_rows(header, rows, default_district="示范区")
    [good] = parsed
    assert good.row == 2 and good.submission.submitter.phone == "13800001111"
    assert good.submission.location.district == "示范区"
    assert good.submission.urgency_hint == "emergency"
    assert {(p.row, p.field) for p in problems} == {
        (4, "标题"),
        (4, "来源渠道"),
        (4, "联系电话"),
        (4, "紧急程度"),
    }


def test_gbk_csv_and_missing_columns() -> None:
    text = "标题,内容,来源渠道,提交人,所在区\n噪音,夜间施工噪音,热线,李四,示范区\n"
    header, rows = sheets.read_table("a.csv", text.encode("gb18030"))
    parsed, problems = sheets.parse_rows(header, rows, None)
    assert len(parsed) == 1 and not problems
    with pytest.raises(sheets.SheetError) as missing:
        sheets.parse_rows(["标题", "提交人"], [], None)
    assert missing.value.status == 422 and "内容" in str(missing.value)


def test_files_that_are_not_tables_are_refused() -> None:
    for name, data, status in (
        ("a.xlsx", b"%PDF-1.4 not a sheet", 422),
        ("a.csv", b"\xff\xfe\x00\x00garbage\x00", 422),
        ("a.docx", b"PK\x03\x04", 415),
    ):
        with pytest.raises(sheets.SheetError) as refused:
            sheets.read_table(name, data)
        assert refused.value.status == status


def test_exported_cells_cannot_run_as_formulas() -> None:
    bad = opinion("x", 9)
    bad.submission = submission(
        title='=HYPERLINK("http://evil.example","点我")', content="@SUM(1)\x00\x1b end"
    )
    row = sheets.export_row(bad, mask=True)
    book = load_workbook(io.BytesIO(sheets.write_xlsx([row])))
    cells = [c for c in next(book.active.iter_rows(min_row=2))]
    title = cells[sheets.EXPORT_COLUMNS.index("标题")]
    assert title.value == '\'=HYPERLINK("http://evil.example","点我")' and title.data_type == "s"
    assert cells[sheets.EXPORT_COLUMNS.index("联系电话")].value == "139****5678"
    assert cells[sheets.EXPORT_COLUMNS.index("内容")].value == "'@SUM(1) end"
    exported = list(csv.reader(io.StringIO(sheets.write_csv([row]).decode("utf-8-sig"))))
    assert exported[1][sheets.EXPORT_COLUMNS.index("内容")] == "'@SUM(1) end"


def _assigned(department: str, role: Literal["lead", "co"] = "lead") -> OpinionAssigned:
    return OpinionAssigned(
        opinion_id="case",
        tracking_no="SQ-2026-000001",
        office_id="office-a",
        title="t",
        department=department,
        department_name=f"{department}局",
        role=role,
        category="c",
        urgency="general",
        explanation="",
        received_at=NOW,
    )


def test_holders_get_the_whole_opinion_masked_and_every_change_after() -> None:
    case = opinion("case", 1)
    case.submission = submission().model_copy(
        update={"content": "电梯坏了，电话 13912345678，身份证 110101199003071234。"}
    )
    [brief] = case.follow("e1", _assigned("housing"), NOW)
    assert case.follow("e1", _assigned("housing"), NOW) == []  # the same event again
    assert isinstance(brief, OpinionBriefed) and brief.department == "housing"
    assert brief.routing_key() == "opinion.briefed.housing"
    assert "139****5678" in brief.opinion.content and "13912345678" not in brief.opinion.content
    assert "110101********1234" in brief.opinion.content
    assert (brief.opinion.submitter.name, brief.opinion.submitter.phone) == ("张*", "139****5678")
    [co] = case.follow("e2", _assigned("transport", "co"), NOW)
    assert isinstance(co, OpinionBriefed)
    assert co.opinion.revision == brief.opinion.revision + 1
    assert case.is_lead("housing") and not case.is_lead("transport")

    ref = FileRef(filename="a.png", media_type="image/png", size=3, uploaded_at=NOW)
    briefs = case.attach("f1", ref)
    assert {b.department for b in briefs if isinstance(b, OpinionBriefed)} == {
        "housing",
        "transport",
    }
    withdrawn = OpinionWithdrawn(
        opinion_id="case", department="transport", tracking_no="t", office_id="o", reason="r"
    )
    case.follow("e3", withdrawn, NOW)
    [edited] = case.edit(submission(), "编辑甲", "改标题", NOW)
    assert isinstance(edited, OpinionBriefed)
    assert (edited.department, edited.reason) == ("housing", "编辑")
    assert [a.download_path for a in edited.opinion.attachments] == ["/attachments/case/f1"]
    # The editor left the phone out: the one on record is kept.
    assert case.submission.submitter.phone == submission().submitter.phone


def test_a_merged_opinion_has_no_holders_and_the_lookup_shows_steps_in_order() -> None:
    case, other = opinion("case", 1), opinion("other", 2)
    case.follow("e1", _assigned("housing"), NOW)
    case.merge_into(other, "编辑甲", NOW)
    assert not case.holds("housing")
    assert case.follow("e2", _assigned("ecology"), NOW) == []
    assert not case.holds("ecology")

    fresh = opinion("fresh", 3)
    fresh.follow("a", _assigned("housing"), NOW)
    signed = AssignmentSigned(
        opinion_id="fresh", office_id="o", department="housing", signed_at=NOW
    )
    closed = CaseClosed(
        opinion_id="fresh", office_id="o", tracking_no="t", outcome="满意", closed_at=NOW
    )
    later = NOW + timedelta(minutes=1)
    rated = FeedbackReceived(
        opinion_id="fresh", office_id="o", rating=Rating.SATISFIED, comment="", rated_at=later
    )
    # Rated and closed in one change, at one instant: the step order decides.
    fresh.follow("c", closed, later)
    fresh.follow("r", rated, later)
    fresh.follow("s", signed, NOW)
    assert [s.step for s in fresh.stages()] == ["已受理", "已交办", "已签收", "已评价", "已办结"]
    assert fresh.status == OpinionStatus.CLOSED


def test_a_contact_reveal_is_recorded() -> None:
    case = opinion("case", 1)
    submitter = case.reveal_contact("住建局", "department", "housing", NOW)
    assert submitter.phone == submission().submitter.phone
    [reveal] = case.reveals.values()
    assert (reveal.by, reveal.subject, reveal.at) == ("住建局", "housing", NOW)
