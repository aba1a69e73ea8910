"""Routing domain: the directory of departments, the category → department table and the
decision (分类、交办). No I/O.

The skeleton classifies by the office's category hint or by keywords; a trained classifier
takes the place of ``classify`` later without changing the decision's shape."""

from datetime import datetime

from pydantic import BaseModel

from shared.events import OpinionAssigned, OpinionReceived
from shared.store import Aggregate


class Department(BaseModel):
    code: str
    name: str


# Demo directory of a fictional district. 兜底: the district government owns what no rule places.
FALLBACK_DEPARTMENT = Department(code="district-gov", name="区人民政府办公室")
DEPARTMENTS: dict[str, Department] = {
    d.code: d
    for d in (
        Department(code="housing", name="区住房和城乡建设局"),
        Department(code="hrss", name="区人力资源和社会保障局"),
        Department(code="education", name="区教育局"),
        Department(code="commerce", name="区商务局"),
        Department(code="health", name="区卫生健康委员会"),
        Department(code="ecology", name="区生态环境局"),
        Department(code="transport", name="区交通运输局"),
        FALLBACK_DEPARTMENT,
    )
}

# category → lead department (主办).
CATEGORY_ROUTES: dict[str, str] = {
    "城乡建设": "housing",
    "劳动和社会保障": "hrss",
    "教育文体": "education",
    "商贸旅游": "commerce",
    "卫生计生": "health",
    "环境保护": "ecology",
    "交通运输": "transport",
}

KEYWORDS: dict[str, tuple[str, ...]] = {
    "城乡建设": ("小区", "物业", "拆迁", "房屋", "装修", "施工", "电梯", "路灯", "燃气"),
    "劳动和社会保障": ("社保", "养老", "医保", "工资", "欠薪", "就业", "退休", "劳动"),
    "教育文体": ("学校", "入学", "学生", "教师", "幼儿园", "学位", "体育"),
    "商贸旅游": ("商家", "商场", "景区", "旅游", "消费", "市场", "价格"),
    "卫生计生": ("医院", "医生", "卫生", "疫苗", "诊所", "生育"),
    "环境保护": ("污染", "噪音", "噪声", "排放", "垃圾", "臭", "环保", "扬尘"),
    "交通运输": ("公交", "交通", "道路", "出租车", "停车", "地铁", "车辆"),
}


class Classification(BaseModel):
    category: str
    confidence: float
    explanation: str


def classify(title: str, content: str, category_hint: str | None) -> Classification | None:
    """The office's hint if it names a known category, else the category with most keyword hits."""
    if category_hint in CATEGORY_ROUTES:
        return Classification(category=category_hint, confidence=1.0, explanation="登记时指定类别")
    text = f"{title} {content}"
    hits = {c: [k for k in words if k in text] for c, words in KEYWORDS.items()}
    best = max(hits, key=lambda c: len(hits[c]))
    total = sum(len(h) for h in hits.values())
    if not hits[best]:
        return None
    return Classification(
        category=best,
        confidence=len(hits[best]) / total,
        explanation="关键词: " + "、".join(hits[best]),
    )


class Decision(Aggregate):
    """How one opinion was routed; its id is the opinion id."""

    category: str
    confidence: float
    department: str
    urgency: str
    explanation: str
    decided_at: datetime


def decide(opinion: OpinionReceived, now: datetime) -> tuple[Decision, OpinionAssigned]:
    """Pick the category and lead department; unknown → the district government (兜底)."""
    found = classify(opinion.title, opinion.content, opinion.category_hint)
    if found is None:
        found = Classification(category="其他", confidence=0.0, explanation="无法分类, 兜底交办")
    department = DEPARTMENTS.get(CATEGORY_ROUTES.get(found.category, ""), FALLBACK_DEPARTMENT)
    decision = Decision(
        id=opinion.opinion_id,
        category=found.category,
        confidence=found.confidence,
        department=department.code,
        urgency=opinion.urgency_hint or "general",
        explanation=found.explanation,
        decided_at=now,
    )
    assigned = OpinionAssigned(
        opinion_id=opinion.opinion_id,
        tracking_no=opinion.tracking_no,
        office_id=opinion.office_id,
        title=opinion.title,
        department=department.code,
        department_name=department.name,
        role="lead",
        category=decision.category,
        urgency=decision.urgency,
        explanation=decision.explanation,
        received_at=opinion.received_at,
    )
    return decision, assigned
