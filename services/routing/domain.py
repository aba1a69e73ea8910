"""Routing domain (分类、交办): the directory (departments, areas, category taxonomy, routing
rules, keyword rules), urgency detection, and the decision — who leads (主办), who co-handles
(协办), how urgent, and why — including re-decision after a department returns (退回) an
assignment and staff decisions from the triage queue (人工分拣). No I/O."""

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from shared.events import (
    DEPARTMENT_CODE,
    EventData,
    Location,
    OpinionAssigned,
    OpinionReceived,
    OpinionTriage,
    OpinionWithdrawn,
    RequestKind,
    Urgency,
)
from shared.store import Aggregate

from .classifier import Prediction

DIRECTORY_ID = "directory"
AREA_CODE = DEPARTMENT_CODE
ANYWHERE = "*"
UNCLASSIFIED = "未分类"
# After this many returns (退回) a person decides, not the router.
MAX_RETURNS = 2


class Contact(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=50)
    phone: str | None = Field(default=None, max_length=30)
    email: str | None = Field(default=None, max_length=100)


class Department(BaseModel):
    """承办单位."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=DEPARTMENT_CODE)
    name: str = Field(min_length=1, max_length=50)
    level: Literal["district", "street", "community"] = "district"
    areas: list[str] = Field(default_factory=list, description="Area codes served; empty: all")
    contacts: list[Contact] = Field(default_factory=list)


class Area(BaseModel):
    """区 → 街道/镇 → 社区/村."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=AREA_CODE)
    name: str = Field(min_length=1, max_length=50)
    level: Literal["district", "street", "community"]
    parent: str | None = None


class Category(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=50)
    group: str = Field(min_length=1, max_length=50)


class Rule(BaseModel):
    """Category × area → lead (主办) and co-handlers (协办); ``area`` ``*`` means anywhere."""

    model_config = ConfigDict(extra="forbid")

    category: str = Field(min_length=1, max_length=50)
    area: str = ANYWHERE
    lead: str
    co: list[str] = Field(default_factory=list)
    urgency: Urgency | None = None


class KeywordRule(BaseModel):
    """Any of ``keywords`` in an opinion's text sets its category, whatever the model says."""

    model_config = ConfigDict(extra="forbid")

    category: str = Field(min_length=1, max_length=50)
    keywords: list[str] = Field(min_length=1)


DEFAULT_URGENCY_WORDS: dict[str, list[str]] = {
    Urgency.EMERGENCY: [
        *("火灾", "起火", "爆炸", "坍塌", "塌方", "触电", "燃气泄漏", "煤气泄漏"),
        *("溺水", "被困", "生命危险", "中毒"),
    ],
    Urgency.TIMELINESS: [
        *("停水", "停电", "断水", "断电", "停气", "没水", "没电", "暖气不热"),
        *("供暖", "水管爆裂", "爆管"),
    ],
    Urgency.COMPLEX: ["历史遗留", "多年未解决", "多个部门", "征地", "拆迁补偿", "规划调整"],
}


# Words that say what kind of request an opinion is (诉求类型); the first kind whose word
# appears wins, in this order (举报 and 投诉 before 咨询: "举报…请问如何处理" is a report).
DEFAULT_KIND_WORDS: dict[str, list[str]] = {
    RequestKind.REPORT: ["举报", "检举"],
    RequestKind.COMPLAINT: ["投诉"],
    RequestKind.HELP: ["求助", "求救", "请帮忙", "帮帮"],
    RequestKind.CONSULT: ["咨询", "请问", "想了解", "是否可以"],
    RequestKind.SUGGESTION: ["建议", "提议"],
}


class Directory(Aggregate):
    """The whole routing directory as one document, read by ``_id`` for every decision."""

    id: str = Field(default=DIRECTORY_ID, alias="_id")
    district: str = Field(description="Name of the district this directory serves")
    fallback: str = Field(description="Department owning what no area places (兜底)")
    confidence_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    departments: dict[str, Department]
    areas: dict[str, Area]
    categories: list[Category]
    rules: list[Rule]
    keyword_rules: list[KeywordRule] = Field(default_factory=list)
    urgency_words: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_URGENCY_WORDS.items()}
    )
    kind_words: dict[RequestKind, list[str]] = Field(
        default_factory=lambda: {RequestKind(k): list(v) for k, v in DEFAULT_KIND_WORDS.items()}
    )

    def problems(self) -> list[dict[str, str]]:
        """Every inconsistency, as ``{field, message}``: unknown departments, areas, categories."""
        found: list[dict[str, str]] = []

        def bad(where: str, message: str) -> None:
            found.append({"field": where, "message": message})

        for key, department in self.departments.items():
            if key != department.code:
                bad(f"departments.{key}", f"key differs from code {department.code!r}")
            for served in department.areas:
                if served not in self.areas:
                    bad(f"departments.{key}.areas", f"unknown area {served!r} 未知辖区")
        if self.fallback not in self.departments:
            bad("fallback", f"unknown department {self.fallback!r} 未知部门")
        for key, area in self.areas.items():
            if key != area.code:
                bad(f"areas.{key}", f"key differs from code {area.code!r}")
            if area.parent is not None and area.parent not in self.areas:
                bad(f"areas.{key}.parent", f"unknown area {area.parent!r} 未知辖区")
            if (area.parent is None) != (area.level == "district"):
                bad(f"areas.{key}", "a district has no parent; streets and communities have one")
        names = [c.name for c in self.categories]
        for name in {n for n in names if names.count(n) > 1}:
            bad("categories", f"category {name!r} listed twice")
        seen: set[tuple[str, str]] = set()
        for i, rule in enumerate(self.rules):
            where = f"rules.{i}"
            if rule.category not in names:
                bad(f"{where}.category", f"unknown category {rule.category!r} 未知类别")
            if rule.area != ANYWHERE and rule.area not in self.areas:
                bad(f"{where}.area", f"unknown area {rule.area!r} 未知辖区")
            for role, code in [("lead", rule.lead), *(("co", c) for c in rule.co)]:
                if code not in self.departments:
                    bad(f"{where}.{role}", f"unknown department {code!r} 未知部门")
            if rule.lead in rule.co:
                bad(f"{where}.co", "the lead department cannot also co-handle")
            for role, code in [("lead", rule.lead), *(("co", c) for c in rule.co)]:
                serves = self.departments[code].areas if code in self.departments else []
                if serves and not self._within(rule.area, serves):
                    bad(
                        f"{where}.{role}",
                        f"{code} serves only {', '.join(serves)}, not {rule.area} 超出辖区",
                    )
            if (rule.category, rule.area) in seen:
                bad(where, f"second rule for {rule.category} × {rule.area}")
            seen.add((rule.category, rule.area))
        for i, keyword_rule in enumerate(self.keyword_rules):
            if keyword_rule.category not in names:
                bad(f"keyword_rules.{i}.category", f"unknown category {keyword_rule.category!r}")
        for key in self.urgency_words:
            if key not in Urgency.__members__.values():
                bad(f"urgency_words.{key}", f"not an urgency class: {', '.join(Urgency)}")
        return found

    def _within(self, area: str, served: list[str]) -> bool:
        """Whether ``area`` is one of ``served`` or lies inside one of them."""
        seen: set[str] = set()
        current: str | None = area
        while current is not None and current in self.areas and current not in seen:
            if current in served:
                return True
            seen.add(current)
            current = self.areas[current].parent
        return False

    def area_path(self, location: Location) -> list[Area] | None:
        """The location's areas from district down (as far as the directory knows them);
        None when the district is not in the directory (unknown jurisdiction)."""
        path: list[Area] = []
        wanted = [location.district, location.street, location.community]
        for level, name in zip(("district", "street", "community"), wanted, strict=True):
            parent = path[-1].code if path else None
            found = next(
                (
                    a
                    for a in self.areas.values()
                    if a.level == level and a.name == name and a.parent == parent
                ),
                None,
            )
            if found is None:
                break
            path.append(found)
        return path or None

    def rule_for(self, category: str, path: list[Area]) -> Rule | None:
        """The most specific rule for the category: community, then street, district, anywhere."""
        for area in [*(a.code for a in reversed(path)), ANYWHERE]:
            for rule in self.rules:
                if rule.category == category and rule.area == area:
                    return rule
        return None

    def keyword_hit(self, text: str) -> tuple[KeywordRule, str] | None:
        for rule in self.keyword_rules:
            for keyword in rule.keywords:
                if keyword in text:
                    return rule, keyword
        return None

    def urgency_of(self, text: str, hint: str | None, rule: Rule | None, co: int) -> str:
        """紧急 words win over everything (safety first), then the office's hint, then 时效
        words, the rule's class, 复杂 words or several co-handlers; else general."""

        def says(urgency: Urgency) -> bool:
            return any(word in text for word in self.urgency_words.get(urgency, []))

        if says(Urgency.EMERGENCY):
            return Urgency.EMERGENCY
        if hint in Urgency.__members__.values():
            return str(hint)
        if says(Urgency.TIMELINESS):
            return Urgency.TIMELINESS
        if rule is not None and rule.urgency is not None:
            return rule.urgency
        if says(Urgency.COMPLEX) or co >= 2:
            return Urgency.COMPLEX
        return Urgency.GENERAL

    def kind_of(self, text: str) -> RequestKind | None:
        """诉求类型 by the words the opinion uses; None when none says (the 办结 clock then
        follows the urgency class alone)."""
        for kind, words in self.kind_words.items():
            if any(word in text for word in words):
                return kind
        return None


def directory_from_yaml(text: str) -> Directory:
    """Parse a directory file; raises ValueError (yaml) or pydantic.ValidationError."""
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError("a directory file is a YAML mapping")
    return directory_from_lists(data)


def directory_from_lists(data: dict[str, Any]) -> Directory:
    """A directory from the file layout, where departments and areas are lists."""
    data = dict(data)
    for key, code in (("departments", "code"), ("areas", "code")):
        items = data.get(key)
        if isinstance(items, list):
            data[key] = {item.get(code, f"#{i}"): item for i, item in enumerate(items)}
    return Directory.model_validate(data)


class DirectoryTable(StrEnum):
    """A directory table that can be imported from a CSV file on its own."""

    DEPARTMENTS = "departments"
    AREAS = "areas"
    CATEGORIES = "categories"
    RULES = "rules"
    KEYWORD_RULES = "keyword_rules"


# CSV cells holding several values, separated by ";", "；" or "、".
LIST_COLUMNS = ("areas", "co", "keywords")


def _cell(column: str, value: str) -> str | list[str]:
    if column not in LIST_COLUMNS:
        return value.strip()
    parts = value.replace("；", ";").replace("、", ";").split(";")
    return [part.strip() for part in parts if part.strip()]


def directory_with_table(
    directory: Directory, table: DirectoryTable, rows: list[dict[str | Any, str | Any]]
) -> Directory:
    """The directory with one table replaced by the rows of a CSV file (empty cells omitted);
    raises pydantic.ValidationError naming unknown columns and bad values."""
    items = [
        {str(k).strip(): _cell(str(k).strip(), v) for k, v in row.items() if k and v}
        for row in rows
    ]
    data = directory.model_dump(by_alias=True)
    data[table.value] = items
    return directory_from_lists(data)


# The demo directory of a fictional district shipped with the project; read once at import
# because the end-to-end fixtures and ``minyi seed`` need its departments as constants.
DEMO_DIRECTORY_FILE = Path(__file__).with_name("demo_directory.yaml")
DEMO_DIRECTORY = directory_from_yaml(DEMO_DIRECTORY_FILE.read_text(encoding="utf-8"))
DEPARTMENTS: dict[str, Department] = DEMO_DIRECTORY.departments


class Candidate(BaseModel):
    category: str
    confidence: float


class Decision(Aggregate):
    """How one opinion was routed; its id is the opinion id. Keeps what re-deciding needs:
    the opinion itself, the ranked categories and who returned it (退回) with which reason."""

    tracking_no: str
    office_id: str
    title: str
    content: str
    location: Location
    category_hint: str | None = None
    urgency_hint: str | None = None
    received_at: datetime

    status: Literal["assigned", "triage"]
    category: str | None = None
    confidence: float = 0.0
    candidates: list[Candidate] = Field(default_factory=list)
    lead: str | None = None
    co: list[str] = Field(default_factory=list)
    urgency: str = Urgency.GENERAL
    explanation: str
    decided_by: str
    decided_at: datetime
    # Every department ever assigned → its role then; followup holds one assignment each.
    assigned: dict[str, str] = Field(default_factory=dict)
    returns: dict[str, str] = Field(default_factory=dict, description="department → reason")
    triage_reason: str | None = None


class Choice(BaseModel):
    """A category picked for an opinion and why."""

    category: str
    confidence: float
    explanation: str
    candidates: list[Candidate]


def choose_category(
    opinion: OpinionReceived, directory: Directory, prediction: Prediction | None, model: str
) -> Choice | None:
    """Keyword rule, else the office's hint naming a known category, else the model."""
    text = f"{opinion.title} {opinion.content}"
    hit = directory.keyword_hit(text)
    if hit is not None:
        rule, keyword = hit
        return Choice(
            category=rule.category,
            confidence=1.0,
            explanation=f"规则命中 keyword rule: “{keyword}” → {rule.category}",
            candidates=[Candidate(category=rule.category, confidence=1.0)],
        )
    if opinion.category_hint in {c.name for c in directory.categories}:
        hint = str(opinion.category_hint)
        return Choice(
            category=hint,
            confidence=1.0,
            explanation="登记时指定类别 category given by the office",
            candidates=[Candidate(category=hint, confidence=1.0)],
        )
    if prediction is None:
        return None
    return Choice(
        category=prediction.category,
        confidence=prediction.confidence,
        explanation=f"模型 {model}: {prediction.category} ({prediction.confidence:.2f}), "
        f"关键词 top terms: {'、'.join(prediction.terms) or '—'}",
        candidates=[Candidate(category=c, confidence=p) for c, p in prediction.ranking],
    )


def decide(
    opinion: OpinionReceived,
    directory: Directory,
    prediction: Prediction | None,
    model: str,
    now: datetime,
) -> tuple[Decision, list[EventData]]:
    """交办 or 人工分拣: the decision for a new opinion and the events it publishes."""
    decision = Decision(
        id=opinion.opinion_id,
        tracking_no=opinion.tracking_no,
        office_id=opinion.office_id,
        title=opinion.title,
        content=opinion.content,
        location=opinion.location,
        category_hint=opinion.category_hint,
        urgency_hint=opinion.urgency_hint,
        received_at=opinion.received_at,
        status="triage",
        explanation="",
        decided_by="router",
        decided_at=now,
    )
    choice = choose_category(opinion, directory, prediction, model)
    if choice is None:
        # Cold start: until a classifier is trained the fallback owner (兜底) dispatches by
        # hand; its returns and staff corrections then become the first labelled examples.
        why = "尚无分类模型, 兜底交办 / no classifier yet: the fallback owner takes it"
        return decision, _assign(
            decision, directory, UNCLASSIFIED, directory.fallback, [], None, why
        )
    decision.category, decision.confidence = choice.category, choice.confidence
    decision.candidates, decision.explanation = choice.candidates, choice.explanation
    if choice.confidence < directory.confidence_threshold:
        reason = (
            f"置信度低 / low confidence: {choice.confidence:.2f} < "
            f"{directory.confidence_threshold:.2f}"
        )
        return decision, _to_triage(decision, reason)
    return decision, _route(decision, directory, choice.category, choice.explanation)


def _route(decision: Decision, directory: Directory, category: str, why: str) -> list[EventData]:
    """Assign ``category`` by the rules of the opinion's area, without returning departments."""
    path = directory.area_path(decision.location)
    excluded = set(decision.returns)
    if path is None:
        # 兜底: unknown jurisdiction goes to the district government, not to a queue.
        if directory.fallback in excluded:
            return _to_triage(decision, "兜底单位已退回 / the fallback owner returned it")
        return _assign(
            decision,
            directory,
            category,
            directory.fallback,
            [],
            None,
            f"{why}; 辖区未知, 兜底交办 / unknown jurisdiction {decision.location.district!r}",
        )
    rule = directory.rule_for(category, path)
    if rule is None:
        where = "/".join(a.name for a in path)
        return _to_triage(decision, f"无交办规则 / no rule for {category} × {where}")
    if rule.lead in excluded:
        return _to_triage(decision, f"主办单位 {rule.lead} 已退回 / the lead returned it")
    co = [c for c in rule.co if c not in excluded]
    where = "、".join(a.name for a in path)
    return _assign(decision, directory, category, rule.lead, co, rule, f"{why}; 辖区 {where}")


def _assign(
    decision: Decision,
    directory: Directory,
    category: str,
    lead: str,
    co: list[str],
    rule: Rule | None,
    explanation: str,
) -> list[EventData]:
    """Set the decision and publish ``opinion.assigned`` to each department not yet holding it."""
    text = f"{decision.title} {decision.content}"
    decision.status, decision.category, decision.triage_reason = "assigned", category, None
    decision.lead, decision.co, decision.explanation = lead, co, explanation
    decision.urgency = directory.urgency_of(text, decision.urgency_hint, rule, len(co))
    events: list[EventData] = []
    for code, role in [(lead, "lead"), *((c, "co") for c in co)]:
        if code in decision.assigned:
            continue
        decision.assigned[code] = role
        events.append(
            OpinionAssigned(
                opinion_id=decision.id,
                tracking_no=decision.tracking_no,
                office_id=decision.office_id,
                title=decision.title,
                department=code,
                department_name=directory.departments[code].name,
                role="lead" if role == "lead" else "co",
                category=category,
                urgency=decision.urgency,
                explanation=explanation,
                received_at=decision.received_at,
                kind=directory.kind_of(text),
            )
        )
    return events


def _to_triage(decision: Decision, reason: str) -> list[EventData]:
    decision.status, decision.triage_reason = "triage", reason
    decision.lead, decision.co = None, []
    return [
        OpinionTriage(
            opinion_id=decision.id,
            tracking_no=decision.tracking_no,
            office_id=decision.office_id,
            reason=reason,
        )
    ]


def redecide_after_return(
    decision: Decision,
    department: str,
    reason: str,
    directory: Directory,
    prediction: Prediction | None,
    now: datetime,
) -> list[EventData]:
    """退回: decide again without the departments that returned it; triage after two returns.

    A co-handler returning only leaves the case. When the lead returns, the next-ranked category
    (the first decision's, then the current model's) whose lead has not returned it takes over:
    the department's "not ours" is evidence against the category. With none left, the fallback
    owner (兜底) takes it."""
    decision.returns[department] = reason
    decision.decided_at, decision.decided_by = now, "router"
    if len(decision.returns) >= MAX_RETURNS:
        return _to_triage(decision, f"退回 {len(decision.returns)} 次 / returned twice: {reason}")
    if department != decision.lead:
        decision.co = [c for c in decision.co if c != department]
        return []
    ranked = [*decision.candidates]
    if prediction is not None:
        ranked += [Candidate(category=c, confidence=p) for c, p in prediction.ranking]
    path = directory.area_path(decision.location)
    returned = f"{department} 退回 ({reason})"
    for candidate in ranked:
        rule = None if path is None else directory.rule_for(candidate.category, path)
        lead = directory.fallback if path is None else rule.lead if rule else None
        if lead is None or lead in decision.returns:
            continue
        decision.confidence = candidate.confidence
        why = f"{returned}, 改派 / re-decided: {candidate.category} ({candidate.confidence:.2f})"
        return _route(decision, directory, candidate.category, why)
    if directory.fallback in decision.returns or decision.category is None:
        return _to_triage(decision, f"{returned}, 无其他可交办单位 / no other department")
    why = f"{returned}, 兜底交办 / no other department: the fallback owner takes it"
    return _assign(decision, directory, decision.category, directory.fallback, [], None, why)


def staff_decision(
    decision: Decision,
    directory: Directory,
    category: str,
    lead: str,
    co: list[str],
    urgency: str | None,
    staff: str,
    now: datetime,
) -> list[EventData]:
    """人工分拣 or 改派: a person sets the category and departments; raises ValueError naming
    unknown categories or departments."""
    problems = []
    if category not in {c.name for c in directory.categories}:
        problems.append(f"category: unknown category {category!r} 未知类别")
    for field_name, code in [("lead", lead), *(("co", c) for c in co)]:
        if code not in directory.departments:
            problems.append(f"{field_name}: unknown department {code!r} 未知部门")
    if lead in co:
        problems.append("co: the lead department cannot also co-handle")
    if problems:
        raise ValueError("; ".join(problems))
    decision.urgency_hint = urgency or decision.urgency_hint
    decision.confidence = 1.0
    decision.candidates = [Candidate(category=category, confidence=1.0)]
    decision.decided_by, decision.decided_at = staff, now
    # A person overrides earlier returns: a department they name again gets it anew.
    for code in [lead, *co]:
        if decision.returns.pop(code, None) is not None:
            decision.assigned.pop(code, None)
    withdrawn = [
        OpinionWithdrawn(
            opinion_id=decision.id,
            tracking_no=decision.tracking_no,
            office_id=decision.office_id,
            department=code,
            reason=f"改派 / reassigned by {staff}",
        )
        for code in [decision.lead, *decision.co]
        if code is not None and code not in {lead, *co}
    ]
    for event in withdrawn:
        decision.assigned.pop(event.department, None)
    # A department that stays but changes role (主办 ⇄ 协办) is told again, with its new role.
    for code, role in [(lead, "lead"), *((c, "co") for c in co)]:
        if decision.assigned.get(code, role) != role:
            decision.assigned.pop(code)
    explanation = f"人工分拣 / decided by {staff}"
    return [*withdrawn, *_assign(decision, directory, category, lead, co, None, explanation)]
