"""The console's own rules: people (personal accounts) in units, their sessions, lockout after
repeated failures, and the audit log entries of what they did. Pure: no I/O."""

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from shared.auth import Role
from shared.events import DEPARTMENT_CODE

# A login name: lowercase letters, digits, dot, dash, underscore (also the document id).
LOGIN = r"^[a-z][a-z0-9._-]{2,31}$"


class UnitKind(StrEnum):
    OFFICE = "office"  # 区政协/人大办公室, 街镇活动组, 委员工作站, 代表之家
    DEPARTMENT = "department"  # 承办单位
    STAFF = "staff"  # 督查室, 编辑部, 系统管理


# Which roles a person of a unit of each kind may hold.
UNIT_ROLES: dict[UnitKind, frozenset[Role]] = {
    UnitKind.OFFICE: frozenset({Role.OFFICE}),
    UnitKind.DEPARTMENT: frozenset({Role.DEPARTMENT}),
    UnitKind.STAFF: frozenset({Role.SUPERVISOR, Role.EDITOR, Role.ADMIN}),
}


class Unit(BaseModel):
    """单位: an office, a department or a staff unit; its code is what the services know."""

    code: str = Field(pattern=DEPARTMENT_CODE)
    name: str = Field(min_length=1, max_length=50)
    kind: UnitKind


class Person(BaseModel):
    """A person with a personal login. Accountability in 社情民意 work is personal."""

    login: str = Field(pattern=LOGIN)
    name: str = Field(min_length=1, max_length=30)
    unit: str
    roles: list[Role] = Field(min_length=1, max_length=3)
    password_hash: str
    disabled: bool = False
    failed_logins: int = 0
    locked_until: datetime | None = None
    password_changed_at: datetime | None = None


class Lockout(BaseModel):
    """After ``attempts`` wrong passwords in a row the account is locked for ``period``."""

    attempts: int = 5
    period: timedelta = timedelta(minutes=15)

    def is_locked(self, person: Person, now: datetime) -> bool:
        return person.locked_until is not None and person.locked_until > now

    def failed(self, person: Person, now: datetime) -> None:
        """Count a wrong password; lock on the ``attempts``-th in a row."""
        person.failed_logins += 1
        if person.failed_logins >= self.attempts:
            person.locked_until = now + self.period
            person.failed_logins = 0

    def succeeded(self, person: Person) -> None:
        person.failed_logins = 0
        person.locked_until = None


class SessionPolicy(BaseModel):
    """A session ends after ``idle`` without a request, and after ``absolute`` in any case."""

    idle: timedelta = timedelta(minutes=30)
    absolute: timedelta = timedelta(hours=12)


class Session(BaseModel):
    """A logged-in person acting in one of their roles. Stored by the hash of its cookie."""

    person: str
    name: str
    unit: str
    unit_name: str
    role: Role
    csrf: str
    created_at: datetime
    last_seen: datetime

    def expires_at(self, policy: SessionPolicy) -> datetime:
        return min(self.last_seen + policy.idle, self.created_at + policy.absolute)

    def is_expired(self, policy: SessionPolicy, now: datetime) -> bool:
        return now >= self.expires_at(policy)


class PasswordError(ValueError):
    """A password the policy refuses, with the reason in Chinese."""


def check_password(password: str, login: str) -> None:
    """密码规则: at least 10 characters, letters and digits, not the login name."""
    if len(password) < 10:
        raise PasswordError("密码至少 10 位")
    if len(password) > 128:
        raise PasswordError("密码最多 128 位")
    if not any(c.isdigit() for c in password) or not any(c.isalpha() for c in password):
        raise PasswordError("密码须同时包含字母和数字")
    if login.lower() in password.lower():
        raise PasswordError("密码不能包含登录名")


AuditOutcome = Literal["ok", "refused", "failed"]


class AuditEntry(BaseModel):
    """审计日志: who did what, when, on which case — one entry per staff action."""

    at: datetime
    person: str
    name: str
    unit: str
    unit_name: str = ""
    role: Role | None
    action: str = Field(description="What was done, in Chinese: 登录, 签收, 答复, 导出 …")
    request: str | None = Field(default=None, description="e.g. POST /api/followup/cases/…/sign")
    target: str | None = Field(default=None, description="The case or opinion id acted on")
    outcome: AuditOutcome
    status: int | None = None
    ip: str | None = None


# What a request through /api does, by service, method and a fixed word of the path (words
# joined by "+": all of them); the first match wins (most specific first).
ACTIONS: list[tuple[str, str, str, str]] = [
    ("followup", "POST", "return-review", "退单审核"),
    ("followup", "POST", "return-dispute", "退单申诉"),
    ("followup", "POST", "respond", "响应"),
    ("followup", "POST", "callback", "电话回访"),
    ("followup", "POST", "feedback-review", "复核"),
    ("followup", "POST", "supervision-order", "督办单办结"),
    ("followup", "POST", "audit-callback", "抽查回访"),
    ("followup", "POST", "themes+done", "每月一题任务完成"),
    ("followup", "POST", "themes+opinions", "每月一题关联意见"),
    ("followup", "POST", "themes", "每月一题选题"),
    ("followup", "POST", "kind", "更正诉求类型"),
    ("followup", "POST", "reports+adoptions", "专报采用"),
    ("followup", "POST", "reports+instructions", "专报批示"),
    ("followup", "POST", "sign-off", "专报签发"),
    ("followup", "POST", "submission", "专报报送"),
    ("followup", "PUT", "draft", "修改专报"),
    ("followup", "POST", "reports", "编辑专报"),
    ("followup", "GET", "reports+export", "导出专报"),
    ("followup", "POST", "review", "答复审核"),
    ("followup", "PUT", "points-rules", "履职积分规则"),
    ("followup", "PUT", "marks", "标记重点/优秀"),
    ("followup", "DELETE", "marks", "取消重点/优秀标记"),
    ("followup", "PUT", "rules", "审核规则"),
    ("followup", "POST", "decision", "延期审批"),
    ("followup", "POST", "sign", "签收"),
    ("followup", "POST", "reply", "答复"),
    ("followup", "POST", "files", "上传答复附件"),
    ("followup", "POST", "input", "协办意见"),
    ("followup", "POST", "extension", "申请延期"),
    ("followup", "POST", "return", "申请退单"),
    ("followup", "POST", "escalate", "催办/督办"),
    ("followup", "POST", "instructions", "批示"),
    ("followup", "POST", "adoptions", "采用"),
    ("followup", "PUT", "calendar", "节假日安排"),
    ("intake", "POST", "similar", "相近意见查询"),
    ("intake", "POST", "contact", "查看联系方式"),
    ("intake", "POST", "members", "委员/代表名册"),
    ("intake", "POST", "merge", "并案"),
    ("intake", "POST", "split", "拆分"),
    ("intake", "POST", "imports", "批量导入"),
    ("intake", "POST", "attachments", "上传附件"),
    ("intake", "POST", "filing", "立案决定"),
    ("intake", "POST", "opinions", "意见登记"),
    ("intake", "PUT", "opinions", "编辑意见"),
    ("routing", "POST", "reassign", "改派"),
    ("routing", "POST", "triage", "分类交办"),
    ("routing", "POST", "activate", "启用模型"),
    ("routing", "POST", "evaluate", "评估模型"),
    ("routing", "POST", "retrain", "重新训练模型"),
    ("routing", "POST", "models", "训练模型"),
    ("routing", "POST", "rules", "修改分派规则"),
    ("routing", "POST", "import", "导入目录"),
    ("routing", "PUT", "directory", "修改目录"),
    ("routing", "PUT", "topics", "专题命名/置顶"),
    ("routing", "POST", "merge", "专题合并"),
    ("routing", "POST", "split", "专题拆分"),
    ("notification", "POST", "subscriptions", "订阅通知"),
    ("notification", "DELETE", "subscriptions", "取消订阅"),
    ("*", "GET", "export", "导出"),
]


def action_of(service: str, method: str, path: str) -> str:
    """The Chinese name of what a request does (``方法 路径`` when it has none)."""
    words = {p for p in path.split("/") if p}
    for on, verb, word, label in ACTIONS:
        if on in (service, "*") and verb == method and set(word.split("+")) <= words:
            return label
    return f"{method} /{service}/{path}"


def target_of(path: str) -> str | None:
    """The case, opinion, report, topic or theme an API path acts on: the segment after
    ``cases``, ``opinions``, ``reports``, ``topics``, ``themes`` …"""
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts[:-1]):
        if part in ("cases", "opinions", "decisions", "triage", "reports", "topics", "themes"):
            return parts[i + 1]
    return None
