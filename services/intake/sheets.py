"""Spreadsheets as offices write them: reading CSV/XLSX with Chinese column names into
submissions (with a report of every bad cell), and writing exports that Excel cannot be
tricked into executing (formula injection)."""

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from openpyxl import Workbook, load_workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from pydantic import ValidationError

from shared.privacy import mask_phone
from shared.problems import chinese

from .domain import STATUS_LABELS, Opinion, OpinionSubmission

MAX_ROWS = 5000

# Column names offices use → field of the submission (dotted for nested fields).
COLUMNS: dict[str, str] = {
    "标题": "title",
    "内容": "content",
    "正文": "content",
    "具体内容": "content",
    "来源渠道": "channel",
    "渠道": "channel",
    "提交人类型": "submitter.kind",
    "提交人身份": "submitter.kind",
    "身份": "submitter.kind",
    "提交人": "submitter.name",
    "姓名": "submitter.name",
    "反映人": "submitter.name",
    "界别": "submitter.sector",
    "选区": "submitter.sector",
    "界别/选区": "submitter.sector",
    "联系电话": "submitter.phone",
    "电话": "submitter.phone",
    "所在区": "location.district",
    "区": "location.district",
    "所在街道": "location.street",
    "街道": "location.street",
    "街道/镇": "location.street",
    "所在社区": "location.community",
    "社区": "location.community",
    "社区/村": "location.community",
    "紧急程度": "urgency_hint",
    "类别": "category_hint",
    "发生时间": "occurred_at",
    "收集人": "collected_by",
    "收集委员": "collected_by",
}
# The first name listed for a field is the one used in messages and exports.
COLUMN_NAMES = {field: name for name, field in reversed(COLUMNS.items())}
REQUIRED = ("title", "content", "channel", "submitter.name")
URGENCY_WORDS = {"紧急": "emergency", "时效": "timeliness", "一般": "general", "复杂": "complex"}
# Spreadsheet programs treat a cell starting with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class SheetError(Exception):
    """The upload is not a table this service can read; ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.extra = extra


@dataclass
class RowProblem:
    row: int
    field: str  # the column name as the file wrote it
    problem: str


@dataclass
class ParsedRow:
    row: int
    submission: OpinionSubmission


def _cell(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # Excel stores phone numbers typed as numbers as floats
    if isinstance(value, datetime | date):
        return value.isoformat()
    text = str(value).strip()
    return text or None


def _not_xlsx(exc: Exception) -> SheetError:
    return SheetError(
        422, f"The file is not a readable XLSX spreadsheet 不是有效的 Excel 表格 ({exc})"
    )


def _xlsx_rows(data: bytes) -> Iterator[list[Any]]:
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:
        # Whatever a broken or hostile file makes the parser raise, it is the file's fault.
        raise _not_xlsx(exc) from None
    try:
        for row in book.worksheets[0].iter_rows(values_only=True):
            yield list(row)
    except Exception as exc:
        # Sheets are parsed lazily: a corrupt sheet inside a valid zip fails only here.
        raise _not_xlsx(exc) from None
    finally:
        book.close()


def _csv_rows(data: bytes) -> Iterator[list[Any]]:
    # Excel saves Chinese CSV as UTF-8 with BOM or as GB18030 (GBK), depending on the version.
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise SheetError(422, "The CSV file is neither UTF-8 nor GBK text 无法识别的文件编码")
    if "\x00" in text:
        raise SheetError(422, "The file is not a CSV text file 不是有效的 CSV 文件")
    try:
        yield from csv.reader(io.StringIO(text))
    except csv.Error as exc:
        raise SheetError(422, f"The CSV file cannot be read 无法读取 CSV 文件 ({exc})") from None


def read_table(filename: str, data: bytes) -> tuple[list[str], list[tuple[int, list[str | None]]]]:
    """The header and the numbered rows (spreadsheet row numbers; empty rows skipped)."""
    lower = filename.lower()
    if lower.endswith(".xlsx"):
        rows = _xlsx_rows(data)
    elif lower.endswith(".csv"):
        rows = _csv_rows(data)
    else:
        raise SheetError(415, f"Only .xlsx and .csv files can be imported, not {filename!r}")
    header = [(_cell(v) or "") for v in next(rows, [])]
    body: list[tuple[int, list[str | None]]] = []
    for number, values in enumerate(rows, start=2):
        cells = [_cell(v) for v in values]
        if not any(cells):
            continue
        if len(body) == MAX_ROWS:
            raise SheetError(413, f"At most {MAX_ROWS} rows per import 每次最多导入 {MAX_ROWS} 行")
        body.append((number, cells))
    return header, body


def _columns(header: list[str]) -> dict[int, str]:
    """Column index → field; SheetError naming the required columns that are missing."""
    columns = {i: COLUMNS[name] for i, name in enumerate(header) if name in COLUMNS}
    missing = [COLUMN_NAMES[f] for f in REQUIRED if f not in columns.values()]
    if missing:
        raise SheetError(
            422,
            f"Missing columns 缺少列: {', '.join(missing)}",
            errors=[{"field": name, "message": "column missing 缺少此列"} for name in missing],
        )
    return columns


def _nest(flat: dict[str, str]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for path, value in flat.items():
        head, _, tail = path.partition(".")
        if tail:
            nested.setdefault(head, {})[tail] = value
        else:
            nested[head] = value
    return nested


def parse_rows(
    header: list[str], rows: Iterable[tuple[int, list[str | None]]], default_district: str | None
) -> tuple[list[ParsedRow], list[RowProblem]]:
    """Each row as a submission, or the problems of its cells (named by their column)."""
    columns = _columns(header)
    name_of = {field: header[i] for i, field in columns.items()}
    parsed, problems = [], []
    for number, cells in rows:
        flat: dict[str, str] = {}
        for i, field in columns.items():
            if i < len(cells) and (value := cells[i]):
                flat[field] = value
        flat.setdefault("submitter.kind", "群众")
        if default_district:
            flat.setdefault("location.district", default_district)
        if "urgency_hint" in flat:
            flat["urgency_hint"] = URGENCY_WORDS.get(flat["urgency_hint"], flat["urgency_hint"])
        try:
            parsed.append(ParsedRow(number, OpinionSubmission.model_validate(_nest(flat))))
        except ValidationError as exc:
            for error in exc.errors():
                field = ".".join(str(p) for p in error["loc"])
                column = name_of.get(field) or COLUMN_NAMES.get(field, field)
                problems.append(RowProblem(number, column, chinese(error)))
    return parsed, problems


def neutralise(value: str) -> str:
    """A leading apostrophe keeps a cell like ``=HYPERLINK(...)`` plain text in Excel."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


EXPORT_COLUMNS = (
    "受理编号", "标题", "内容", "来源渠道", "提交人类型", "提交人", "界别/选区", "联系电话",
    "所在区", "所在街道", "所在社区", "紧急程度", "类别", "状态", "附议数", "登记时间",
)  # fmt: skip
_URGENCY_NAMES = {v: k for k, v in URGENCY_WORDS.items()}


def export_row(opinion: Opinion, mask: bool) -> list[str]:
    """One opinion as an export row, every cell neutralised; ``mask`` hides the phone."""
    s = opinion.submission
    phone = mask_phone(s.submitter.phone) if mask else s.submitter.phone
    cells = [
        opinion.tracking_no, s.title, s.content, s.channel, s.submitter.kind, s.submitter.name,
        s.submitter.sector, phone, s.location.district, s.location.street, s.location.community,
        _URGENCY_NAMES.get(s.urgency_hint or ""), s.category_hint,
        STATUS_LABELS[opinion.status], str(len(opinion.supporters)),
        opinion.received_at.isoformat(timespec="seconds"),
    ]  # fmt: skip
    return [neutralise(str(c)) if c is not None else "" for c in cells]


def write_csv(rows: Iterable[list[str]]) -> bytes:
    """UTF-8 with BOM, which Excel needs to show Chinese correctly."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8-sig")


def write_xlsx(rows: Iterable[list[str]]) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("社情民意")
    sheet.append(list(EXPORT_COLUMNS))
    for row in rows:
        # XML cannot carry most control characters; CSV keeps them.
        sheet.append([ILLEGAL_CHARACTERS_RE.sub("", cell) for cell in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
