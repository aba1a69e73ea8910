"""Console use cases: log in and out, change a password, manage people and units, and record
what people do. No business rules of the services: those stay behind ``/api``."""

import contextlib
import secrets
from dataclasses import dataclass

from pymongo.asynchronous.database import AsyncDatabase

from shared import auth
from shared.auth import Principal, Role
from shared.clock import utcnow
from shared.store import Document

from .adapters import AuditLog, Directory, Passwords, Sessions, token_id
from .domain import (
    UNIT_ROLES,
    AuditEntry,
    AuditOutcome,
    Lockout,
    PasswordError,
    Person,
    Session,
    SessionPolicy,
    Unit,
    check_password,
)


class ConsoleError(Exception):
    """A refusal with its HTTP status and a Chinese message for the person."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


@dataclass
class ConsolePorts:
    directory: Directory
    sessions: Sessions
    audit: AuditLog
    passwords: Passwords
    auth_db: AsyncDatabase[Document]
    lockout: Lockout
    policy: SessionPolicy


async def record(
    p: ConsolePorts,
    session: Session | None,
    action: str,
    outcome: AuditOutcome,
    *,
    login: str | None = None,
    request: str | None = None,
    target: str | None = None,
    status: int | None = None,
    ip: str | None = None,
) -> None:
    """One audit entry, attributed to the session's person (or the login tried)."""
    await p.audit.record(
        AuditEntry(
            at=utcnow(),
            person=session.person if session else login or "",
            name=session.name if session else "",
            unit=session.unit if session else "",
            unit_name=session.unit_name if session else "",
            role=session.role if session else None,
            action=action,
            request=request,
            target=target,
            outcome=outcome,
            status=status,
            ip=ip,
        )
    )


async def log_in(
    p: ConsolePorts, login: str, password: str, role: Role | None, ip: str | None
) -> tuple[str, Session]:
    """登录: the cookie token and the new session. Wrong password or unknown login: the same
    answer; the ``attempts``-th wrong password in a row locks the account."""
    person = await p.directory.person(login)
    now = utcnow()
    if person is not None and p.lockout.is_locked(person, now):
        await record(p, None, "登录", "refused", login=login, status=423, ip=ip)
        raise ConsoleError(423, "账号已锁定，请稍后再试或联系管理员解锁")
    if not p.passwords.verify(person.password_hash if person else None, password):
        locked = False
        if person is not None:
            p.lockout.failed(person, now)
            locked = p.lockout.is_locked(person, now)
            await p.directory.save_person(person)
        await record(p, None, "登录", "refused", login=login, status=401, ip=ip)
        if locked:
            raise ConsoleError(
                423, f"连续 {p.lockout.attempts} 次密码错误，账号已锁定，请稍后再试或联系管理员"
            )
        raise ConsoleError(401, "用户名或密码错误")
    assert person is not None  # verify() is False without a stored hash
    if person.disabled:
        await record(p, None, "登录", "refused", login=login, status=403, ip=ip)
        raise ConsoleError(403, "账号已停用，请联系管理员")
    unit = await p.directory.unit(person.unit)
    if unit is None:
        raise ConsoleError(403, f"账号所属单位 {person.unit} 不存在，请联系管理员")
    chosen = role or person.roles[0]
    if chosen not in person.roles:
        raise ConsoleError(403, f"账号没有“{chosen}”身份", field="role")
    p.lockout.succeeded(person)
    await p.directory.save_person(person)
    token = secrets.token_urlsafe(32)
    session = Session(
        person=person.login,
        name=person.name,
        unit=unit.code,
        unit_name=unit.name,
        role=chosen,
        csrf=secrets.token_urlsafe(24),
        created_at=now,
        last_seen=now,
    )
    session_id = token_id(token)
    await p.sessions.add(session_id, session)
    principal = Principal(
        role=chosen, subject=unit.code, name=f"{person.name}（{unit.name}）", person=person.login
    )
    await auth.store_key(
        p.auth_db,
        p.sessions.service_key(session_id),
        principal,
        expires_at=now + p.policy.absolute,
    )
    await record(p, session, "登录", "ok", status=200, ip=ip)
    return token, session


async def current(p: ConsolePorts, token: str | None) -> tuple[str, Session] | None:
    """The live session of a cookie (its id and the session), or None; an expired one ends."""
    if not token:
        return None
    session_id = token_id(token)
    session = await p.sessions.get(session_id)
    if session is None:
        return None
    now = utcnow()
    person = await p.directory.person(session.person)
    if session.is_expired(p.policy, now) or person is None or person.disabled:
        await end(p, session_id)
        return None
    # One write a minute at most, not one per request.
    if (now - session.last_seen).total_seconds() > 60:
        await p.sessions.touch(session_id, now)
    return session_id, session


async def end(p: ConsolePorts, session_id: str) -> None:
    """The session and the services' key for it end together."""
    await p.sessions.end(session_id)
    with contextlib.suppress(LookupError):  # already revoked by a concurrent logout
        await auth.revoke_key(p.auth_db, p.sessions.service_key(session_id))


async def change_password(p: ConsolePorts, session: Session, old: str, new: str) -> None:
    person = await p.directory.person(session.person)
    if person is None or not p.passwords.verify(person.password_hash, old):
        raise ConsoleError(422, "原密码不正确", field="old_password")
    try:
        check_password(new, person.login)
    except PasswordError as exc:
        raise ConsoleError(422, str(exc), field="new_password") from None
    person.password_hash = p.passwords.hash(new)
    person.password_changed_at = utcnow()
    await p.directory.save_person(person)


async def add_person(
    p: ConsolePorts, login: str, name: str, unit_code: str, roles: list[Role], password: str
) -> Person:
    """管理员新建账号: the unit must exist and allow the roles; the password follows the rules."""
    unit = await p.directory.unit(unit_code)
    if unit is None:
        raise ConsoleError(422, f"单位 {unit_code} 不存在", field="unit")
    wrong = [r.value for r in roles if r not in UNIT_ROLES[unit.kind]]
    if wrong:
        raise ConsoleError(422, f"{unit.name}的人员不能担任：{'、'.join(wrong)}", field="roles")
    try:
        check_password(password, login)
    except PasswordError as exc:
        raise ConsoleError(422, str(exc), field="password") from None
    person = Person(
        login=login,
        name=name,
        unit=unit.code,
        roles=roles,
        password_hash=p.passwords.hash(password),
        password_changed_at=utcnow(),
    )
    if not await p.directory.add_person(person):
        raise ConsoleError(409, f"登录名 {login} 已被使用", field="login")
    return person


async def update_person(
    p: ConsolePorts,
    login: str,
    disabled: bool | None,
    unlock: bool,
    password: str | None,
) -> Person:
    """停用/启用, 解锁, 重置密码."""
    person = await p.directory.person(login)
    if person is None:
        raise ConsoleError(404, f"没有账号 {login}")
    if disabled is not None:
        person.disabled = disabled
    if unlock:
        p.lockout.succeeded(person)
    if password is not None:
        try:
            check_password(password, login)
        except PasswordError as exc:
            raise ConsoleError(422, str(exc), field="password") from None
        person.password_hash = p.passwords.hash(password)
        person.password_changed_at = utcnow()
    await p.directory.save_person(person)
    return person


async def add_unit(p: ConsolePorts, unit: Unit) -> Unit:
    await p.directory.save_unit(unit)
    return unit
