"""API keys and principals. Keys are shown once and stored only as SHA-256 hashes, which are
the document ids, so checking a key is one read by ``_id``."""

import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from shared.events import utcnow
from shared.problems import Problem
from shared.store import Batched, Document, upsert_by_id

AUTH_DB = "auth"


class Role(StrEnum):
    OFFICE = "office"  # 区政协/人大办公室, 街镇活动组, 委员工作站, 代表之家
    DEPARTMENT = "department"  # 承办单位
    SUPERVISOR = "supervisor"  # 督办
    EDITOR = "editor"  # 登记、分类、编辑
    ADMIN = "admin"


# What each role may do; endpoints ask for a scope, not a role.
ROLE_SCOPES: dict[Role, frozenset[str]] = {
    # The registering office reviews replies (审核) where a review rule names it.
    Role.OFFICE: frozenset(
        {
            "opinions:submit",
            "opinions:read",
            "cases:read",
            "subscriptions",
            "routing:taxonomy",
            "replies:review",
        }
    ),
    # Departments read the opinions they hold (and their attachments) from intake.
    Role.DEPARTMENT: frozenset(
        {"opinions:read", "cases:read", "cases:work", "subscriptions", "routing:taxonomy"}
    ),
    # Supervisors review replies and sign off 信息专报 (签发); editors compile and submit them.
    Role.SUPERVISOR: frozenset(
        {
            "cases:read",
            "cases:supervise",
            "routing:read",
            "routing:taxonomy",
            "subscriptions",
            "replies:review",
            "reports:read",
            "reports:sign",
            "reports:outcome",
            "topics:curate",
        }
    ),
    # Editors (分类交办) read cases and correct their kind of request (更正诉求类型).
    Role.EDITOR: frozenset(
        {
            "cases:read",
            "cases:classify",
            "opinions:read",
            "opinions:edit",
            "routing:read",
            "routing:taxonomy",
            "routing:triage",
            "reports:read",
            "reports:edit",
            "reports:outcome",
            "topics:curate",
        }
    ),
    Role.ADMIN: frozenset({"*"}),
}


class Principal(BaseModel):
    role: Role
    subject: str = Field(description="Office or department code, or the staff member's name")
    name: str
    # The person acting through the console (their login); None for a machine's API key.
    person: str | None = None

    def can(self, scope: str) -> bool:
        scopes = ROLE_SCOPES[self.role]
        return "*" in scopes or scope in scopes

    def sees_all(self) -> bool:
        """Staff roles see every office's and department's records."""
        return self.role in {Role.SUPERVISOR, Role.EDITOR, Role.ADMIN}


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(db: AsyncDatabase[Document], role: Role, subject: str, name: str) -> str:
    """Create an API key and return it; only its hash is stored."""
    key = f"mny_{role.value[:4]}_{secrets.token_urlsafe(24)}"
    await store_key(db, key, Principal(role=role, subject=subject, name=name))
    return key


async def store_key(
    db: AsyncDatabase[Document],
    key: str,
    principal: Principal,
    expires_at: datetime | None = None,
) -> None:
    """Store ``key`` (by its hash) for ``principal``; refused after ``expires_at`` if given
    (the console's keys for a person's session)."""
    doc = {"_id": hash_key(key), **principal.model_dump(), "created_at": utcnow()}
    await db.api_keys.replace_one(
        {"_id": doc["_id"]}, {**doc, "expires_at": expires_at}, upsert=True
    )


KEY_ID_LENGTH = 12  # of the hash, shown by `minyi keys list` to name a key without the key


async def list_keys(db: AsyncDatabase[Document]) -> list[Document]:
    """Every key's id (the start of its hash), principal, creation time and revocation."""
    return [
        {**doc, "_id": doc["_id"][:KEY_ID_LENGTH]}
        async for doc in db.api_keys.find({}).sort("created_at", 1)
    ]


async def revoke_key(db: AsyncDatabase[Document], key_or_id: str) -> Document:
    """Revoke a key named by the key itself or by its id from ``list_keys``; returns what was
    revoked. Raises LookupError when it names no key or more than one."""
    if key_or_id.startswith("mny_"):
        found = [doc async for doc in db.api_keys.find({"_id": hash_key(key_or_id)})]
    elif len(key_or_id) >= 8:
        found = [d async for d in db.api_keys.find({}) if d["_id"].startswith(key_or_id)]
    else:
        found = []
    if len(found) != 1:
        raise LookupError(f"{len(found)} keys match {key_or_id!r}; give a key or a key id")
    revoked = {"revoked": True, "revoked_at": utcnow()}
    await db.api_keys.update_one({"_id": found[0]["_id"]}, {"$set": revoked})
    return {**found[0], **revoked, "_id": found[0]["_id"][:KEY_ID_LENGTH]}


# Valid keys are remembered for a short while: one database read less on every request.
# A revoked key therefore works for at most this long in a process that has seen it.
KEY_CACHE_SECONDS = 30.0
_known: dict[str, tuple[float, Principal]] = {}

_bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer mny_...`")


async def _principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise Problem(
            401, "缺少凭据 / Missing credentials", "Send an API key: Authorization: Bearer <key>"
        )
    key_id = hash_key(credentials.credentials)
    request.state.key_id = key_id
    cached = _known.get(key_id)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    db: AsyncDatabase[Document] = request.app.state.auth_db
    doc = await db.api_keys.find_one({"_id": key_id})
    expired = (
        doc is not None and doc.get("expires_at") is not None and doc["expires_at"] <= utcnow()
    )
    if doc is None or doc.get("revoked") or expired:
        raise Problem(
            401, "凭据无效 / Invalid credentials", "The API key is unknown, revoked or expired."
        )
    principal = Principal.model_validate(doc)
    if len(_known) > 10_000:
        _known.clear()
    _known[key_id] = (time.monotonic() + KEY_CACHE_SECONDS, principal)
    return principal


async def _limited(
    request: Request, principal: Annotated[Principal, Depends(_principal)]
) -> Principal:
    """Count the request against its key's limit per minute, in the store, so every replica
    of the service counts together; 429 with Retry-After beyond it."""
    limits: RateLimits = request.app.state.rate_limits
    wait = await limits.hit(request.state.key_id, utcnow())
    if wait:
        raise Problem(
            429,
            detail=f"At most {limits.per_minute} requests a minute per key; "
            f"try again in {wait} s 请求过于频繁，请 {wait} 秒后再试.",
            headers={"Retry-After": str(wait)},
        )
    return principal


class RateLimits:
    """A fixed one-minute window per key: one counter document per key and minute, read and
    written by ``_id`` (``<key hash>:<minute>``); the one before is removed when a new one
    starts, so at most two are kept per key. Concurrent requests of one key in this process
    are counted with one ``$inc`` of their number (like one each, in one round trip), and each
    ``$inc`` takes a few numbers more than it needs (a lease of 1 % of the limit) for the
    next requests, which then need no round trip: a replica's unused lease at the minute's
    end can refuse a key up to 1 % early. MongoDB counts exactly; FerretDB 1.24 loses some of
    the increments several replicas make at the same moment (measured ~20 %), so there the
    limit lets a little more through."""

    def __init__(self, collection: AsyncCollection[Document], per_minute: int) -> None:
        self.collection = collection
        self.per_minute = per_minute
        self.lease = max(1, per_minute // 100)
        self.counters: dict[str, Batched[None, int]] = {}
        # Numbers of this minute's counters that this process took and has not handed out.
        self.leased: dict[str, range] = {}

    async def hit(self, key_id: str, now: datetime) -> int:
        """Count one request; 0 if within the limit, else the seconds until the next window."""
        minute = int(now.timestamp()) // 60
        counter_id = f"{key_id[:32]}:{minute}"
        if counter_id not in self.counters:
            # Counters of past minutes that have nothing on the way are done with.
            for done in [k for k, c in self.counters.items() if c.idle]:
                del self.counters[done]
                self.leased.pop(done, None)
            self.counters[counter_id] = Batched(lambda hits: self._count(counter_id, len(hits)))
        held = self.leased.get(counter_id)
        if held:
            n, self.leased[counter_id] = held[0], held[1:]
        else:
            n = await self.counters[counter_id](None)
        if n == 1:
            await self.collection.delete_one({"_id": f"{key_id[:32]}:{minute - 1}"})
        if n <= self.per_minute:
            return 0
        return 60 - int(now.timestamp()) % 60

    async def _inc(self, counter_id: str, hits: int) -> Document | None:
        return await upsert_by_id(
            self.collection.find_one_and_update,
            {"_id": counter_id},
            {"$inc": {"n": hits}},
            return_document=ReturnDocument.AFTER,
        )

    async def _count(self, counter_id: str, hits: int) -> list[int | Exception]:
        """Add ``hits`` requests; each one's number within the minute, in order. Numbers
        leased before go first; the rest are taken with a new lease."""
        held = self.leased.pop(counter_id, range(0))
        numbers: list[int | Exception] = list(held[:hits])
        need = hits - len(numbers)
        if not need:
            self.leased[counter_id] = held[hits:]
            return numbers
        take = need + self.lease - 1
        counter = await self._inc(counter_id, take)
        assert counter is not None  # upserted
        first = int(counter["n"]) - take + 1
        self.leased[counter_id] = range(first + need, first + take)
        return [*numbers, *range(first, first + need)]


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """FastAPI dependency: the caller's principal, which must hold ``scope``."""

    async def dependency(principal: Annotated[Principal, Depends(_limited)]) -> Principal:
        if not principal.can(scope):
            raise Problem(
                403,
                "无权操作 / Forbidden",
                f"A {principal.role.value} key may not do this ({scope}).",
            )
        return principal

    return dependency
