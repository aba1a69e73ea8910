"""Console HTTP: login and sessions (``/console/…``), people and units for administrators, the
audit log for supervisors, and ``/api/<service>/…`` passed to the services with the person's
identity. The browser app is served from the same origin (see main.py)."""

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Cookie, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from shared.auth import Role
from shared.clock import utcnow
from shared.paging import After, Before
from shared.problems import Problem
from shared.settings import SERVICES

from . import handlers
from .adapters import Upstreams
from .domain import LOGIN, Person, Session, Unit, action_of, target_of
from .handlers import ConsoleError, ConsolePorts

COOKIE = "minyi_session"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# Reads that carry personal data away are audited like actions (revealing a contact is a POST).
AUDITED_READS = ("export",)

console = APIRouter(prefix="/console", tags=["console"])
passthrough = APIRouter(tags=["api"])


def ports(request: Request) -> ConsolePorts:
    return request.app.state.ports


Ports = Annotated[ConsolePorts, Depends(ports)]


def _problem(error: ConsoleError) -> Problem:
    errors = [{"field": error.field, "message": error.message}] if error.field else []
    return Problem(error.status, detail=error.message, errors=errors)


async def _session(
    request: Request,
    p: Ports,
    token: Annotated[str | None, Cookie(alias=COOKIE)] = None,
    csrf: Annotated[str | None, Header(alias="X-CSRF-Token")] = None,
) -> tuple[str, Session] | None:
    """The caller's live session, if any; unsafe methods must echo its CSRF token."""
    found = await handlers.current(p, token)
    if found is not None and request.method not in SAFE_METHODS and csrf != found[1].csrf:
        raise Problem(403, detail="CSRF 校验失败，请刷新页面后重试 (missing or wrong X-CSRF-Token)")
    return found


MaybeSession = Annotated[tuple[str, Session] | None, Depends(_session)]


async def _signed_in(found: MaybeSession) -> tuple[str, Session]:
    if found is None:
        raise Problem(401, detail="请先登录 (no session, or it has expired)")
    return found


SignedIn = Annotated[tuple[str, Session], Depends(_signed_in)]


def _role(*roles: Role) -> Any:
    async def check(found: SignedIn) -> Session:
        if found[1].role not in roles:
            raise Problem(403, detail="当前身份无权进行此操作")
        return found[1]

    return Depends(check)


AdminSession = Annotated[Session, _role(Role.ADMIN)]
AuditReader = Annotated[Session, _role(Role.ADMIN, Role.SUPERVISOR)]


class Credentials(BaseModel):
    login: str = Field(min_length=1, max_length=32)
    password: str = Field(min_length=1, max_length=128)
    role: Role | None = None


class Me(BaseModel):
    login: str
    name: str
    unit: str
    unit_name: str
    role: Role
    roles: list[Role]
    csrf: str
    # The services' clock: the app counts deadlines and picks "this month" by it, not by the
    # browser's.
    now: datetime


async def _me(p: ConsolePorts, session: Session) -> Me:
    person = await p.directory.person(session.person)
    roles = person.roles if person else [session.role]
    return Me(
        login=session.person,
        name=session.name,
        unit=session.unit,
        unit_name=session.unit_name,
        role=session.role,
        roles=roles,
        csrf=session.csrf,
        now=utcnow(),
    )


@console.post("/login", summary="登录: sets the session cookie")
async def login(body: Credentials, request: Request, response: Response, p: Ports) -> Me:
    ip = request.client.host if request.client else None
    try:
        token, session = await handlers.log_in(p, body.login, body.password, body.role, ip)
    except ConsoleError as exc:
        raise _problem(exc) from None
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        secure=request.app.state.secure_cookies,
        samesite="strict",
        path="/",
        max_age=int(p.policy.absolute.total_seconds()),
    )
    return await _me(p, session)


@console.post("/logout", summary="退出登录")
async def logout(found: SignedIn, request: Request, response: Response, p: Ports) -> dict[str, str]:
    session_id, session = found
    await handlers.end(p, session_id)
    await handlers.record(p, session, "退出登录", "ok", status=200)
    response.delete_cookie(COOKIE, path="/")
    return {"status": "logged out"}


@console.get("/me", summary="Who is logged in (and the CSRF token for unsafe requests)")
async def me(found: SignedIn, p: Ports) -> Me:
    return await _me(p, found[1])


class PasswordChange(BaseModel):
    old_password: str = Field(min_length=1, max_length=128)
    new_password: str = Field(min_length=1, max_length=128)


@console.post("/password", summary="修改密码")
async def change_password(body: PasswordChange, found: SignedIn, p: Ports) -> dict[str, str]:
    try:
        await handlers.change_password(p, found[1], body.old_password, body.new_password)
    except ConsoleError as exc:
        await handlers.record(p, found[1], "修改密码", "refused", status=exc.status)
        raise _problem(exc) from None
    await handlers.record(p, found[1], "修改密码", "ok", status=200)
    return {"status": "changed"}


class PersonView(BaseModel):
    login: str
    name: str
    unit: str
    roles: list[Role]
    disabled: bool
    locked: bool


def _view(person: Person) -> PersonView:
    return PersonView(
        login=person.login,
        name=person.name,
        unit=person.unit,
        roles=person.roles,
        disabled=person.disabled,
        locked=person.locked_until is not None,
    )


class NewPerson(BaseModel):
    login: str = Field(pattern=LOGIN)
    name: str = Field(min_length=1, max_length=30)
    unit: str = Field(min_length=1, max_length=32)
    roles: list[Role] = Field(min_length=1, max_length=3)
    password: str = Field(min_length=1, max_length=128)


@console.get("/people", summary="账号列表 (administrators)")
async def list_people(
    session: AdminSession,
    p: Ports,
    unit: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    after: After = None,
) -> list[PersonView]:
    return [_view(person) for person in await p.directory.list_people(unit, limit, after)]


@console.post("/people", status_code=201, summary="新建账号 (administrators)")
async def add_person(body: NewPerson, session: AdminSession, p: Ports) -> PersonView:
    try:
        person = await handlers.add_person(
            p, body.login, body.name, body.unit, body.roles, body.password
        )
    except ConsoleError as exc:
        raise _problem(exc) from None
    await handlers.record(p, session, f"新建账号 {body.login}", "ok", status=201)
    return _view(person)


class PersonChange(BaseModel):
    disabled: bool | None = None
    unlock: bool = False
    password: str | None = Field(default=None, min_length=1, max_length=128)


@console.patch("/people/{login}", summary="停用/启用、解锁、重置密码 (administrators)")
async def change_person(
    login: str, body: PersonChange, session: AdminSession, p: Ports
) -> PersonView:
    try:
        person = await handlers.update_person(p, login, body.disabled, body.unlock, body.password)
    except ConsoleError as exc:
        raise _problem(exc) from None
    await handlers.record(p, session, f"修改账号 {login}", "ok", status=200)
    return _view(person)


@console.get("/units", summary="单位列表")
async def list_units(found: SignedIn, p: Ports) -> list[Unit]:
    return await p.directory.list_units()


@console.put("/units/{code}", summary="新建或修改单位 (administrators)")
async def put_unit(code: str, body: Unit, session: AdminSession, p: Ports) -> Unit:
    if body.code != code:
        raise Problem(
            422,
            detail="单位编码与路径不一致",
            errors=[{"field": "code", "message": f"应为 {code}"}],
        )
    await handlers.record(p, session, f"保存单位 {code}", "ok", status=200)
    return await handlers.add_unit(p, body)


@console.get("/audit", summary="审计日志 (supervisors, administrators), newest first")
async def audit(
    session: AuditReader,
    p: Ports,
    person: Annotated[str | None, Query(max_length=32)] = None,
    target: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Before = None,
) -> list[dict[str, Any]]:
    filters = {k: v for k, v in (("person", person), ("target", target)) if v}
    return await p.audit.search(filters, limit, before)


# Headers passed on in each direction; everything else (cookies above all) stays here.
REQUEST_HEADERS = ("content-type", "accept", "idempotency-key", "if-match")
RESPONSE_HEADERS = ("content-type", "content-disposition", "retry-after", "location")


@passthrough.api_route(
    "/api/{service}/{path:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    summary="Passed to the service with the person's identity",
)
async def to_service(
    service: str, path: str, request: Request, p: Ports, found: MaybeSession
) -> StreamingResponse:
    if service not in SERVICES:
        raise Problem(404, detail=f"没有服务 {service}")
    return await _forward(service, path, request, p, found)


@passthrough.post("/feedback/{token}", summary="评价 posted to the link itself (its page is GET)")
async def rate_by_link(token: str, request: Request, p: Ports) -> StreamingResponse:
    # The submitter holds no session: the signed token is the credential.
    return await _forward("followup", f"feedback/{token}", request, p, None)


async def _forward(
    service: str, path: str, request: Request, p: ConsolePorts, found: tuple[str, Session] | None
) -> StreamingResponse:
    upstreams: Upstreams = request.app.state.upstreams
    headers = {k: v for k, v in request.headers.items() if k.lower() in REQUEST_HEADERS}
    if found is not None:
        headers["authorization"] = f"Bearer {p.sessions.service_key(found[0])}"
    client = upstreams.clients[service]
    outgoing = client.build_request(
        request.method,
        # The path arrives decoded; sent on encoded again, whatever it holds.
        "/" + quote(path, safe="/"),
        params=request.query_params,
        headers=headers,
        content=await request.body(),
    )
    try:
        upstream = await client.send(outgoing, stream=True)
    except httpx.HTTPError:
        raise Problem(503, detail=f"{service} 服务暂不可用，请稍后重试") from None
    audited = request.method not in SAFE_METHODS or any(w in path for w in AUDITED_READS)
    if found is not None and audited:
        await handlers.record(
            p,
            found[1],
            action_of(service, request.method, path),
            "ok" if upstream.status_code < 400 else "failed",
            request=f"{request.method} /api/{service}/{path}",
            target=target_of(path),
            status=upstream.status_code,
            ip=request.client.host if request.client else None,
        )
    return StreamingResponse(
        upstream.aiter_raw(),
        status_code=upstream.status_code,
        headers={k: v for k, v in upstream.headers.items() if k.lower() in RESPONSE_HEADERS},
        background=BackgroundTask(upstream.aclose),
    )
