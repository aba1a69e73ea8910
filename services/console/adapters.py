"""Console adapters: people, units, sessions and the audit log on MongoDB/FerretDB (each read
by ``_id`` on the hot path), argon2id password hashes, and the services behind ``/api``."""

import hashlib
import hmac
from datetime import datetime
from typing import Any

import httpx
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pymongo.asynchronous.database import AsyncDatabase

from shared.events import new_id
from shared.paging import after_filter, before_filter
from shared.store import Document, upsert_by_id

from .domain import AuditEntry, Person, Session, Unit


class Passwords:
    """argon2id (the library's default type and parameters, RFC 9106's second profile)."""

    def __init__(self) -> None:
        self.hasher = PasswordHasher()
        # Verified when the login is unknown, so that the answer takes as long as for a person.
        self.decoy = self.hasher.hash("decoy-password-0")

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify(self, hashed: str | None, password: str) -> bool:
        try:
            return self.hasher.verify(hashed or self.decoy, password) and hashed is not None
        except (VerificationError, InvalidHashError):
            return False


class Directory:
    """People (``_id`` = login) and units (``_id`` = code)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.people = db.people
        self.units = db.units

    async def person(self, login: str) -> Person | None:
        doc = await self.people.find_one({"_id": login})
        return None if doc is None else Person.model_validate(doc)

    async def save_person(self, person: Person) -> None:
        await upsert_by_id(
            self.people.replace_one,
            {"_id": person.login},
            {"_id": person.login, **person.model_dump()},
        )

    async def add_person(self, person: Person) -> bool:
        """False if the login is taken."""
        result = await upsert_by_id(
            self.people.update_one, {"_id": person.login}, {"$setOnInsert": person.model_dump()}
        )
        return result.upserted_id is not None

    async def list_people(self, unit: str | None, limit: int, after: str | None) -> list[Person]:
        query: Document = {}
        if unit:
            query["unit"] = unit
        query.update(after_filter(after))
        cursor = self.people.find(query).sort("_id", 1).limit(limit)
        return [Person.model_validate(doc) async for doc in cursor]

    async def unit(self, code: str) -> Unit | None:
        doc = await self.units.find_one({"_id": code})
        return None if doc is None else Unit.model_validate(doc)

    async def save_unit(self, unit: Unit) -> None:
        await upsert_by_id(
            self.units.replace_one, {"_id": unit.code}, {"_id": unit.code, **unit.model_dump()}
        )

    async def list_units(self) -> list[Unit]:
        return [Unit.model_validate(doc) async for doc in self.units.find({}).sort("_id", 1)]


def token_id(token: str) -> str:
    """Sessions are stored by the hash of their cookie: a copy of the database holds none."""
    return hashlib.sha256(token.encode()).hexdigest()


class Sessions:
    def __init__(self, db: AsyncDatabase[Document], secret: str) -> None:
        self.collection = db.sessions
        self.key = hashlib.sha256(f"console-session:{secret}".encode()).digest()

    def service_key(self, session_id: str) -> str:
        """The API key the console presents to the services for this session: derived, never
        stored, so the console's database alone cannot act as anyone."""
        digest = hmac.new(self.key, session_id.encode(), hashlib.sha256).hexdigest()
        return f"mny_sess_{digest}"

    async def add(self, session_id: str, session: Session) -> None:
        await self.collection.insert_one({"_id": session_id, **session.model_dump()})

    async def get(self, session_id: str) -> Session | None:
        doc = await self.collection.find_one({"_id": session_id})
        return None if doc is None else Session.model_validate(doc)

    async def touch(self, session_id: str, now: datetime) -> None:
        await self.collection.update_one({"_id": session_id}, {"$set": {"last_seen": now}})

    async def end(self, session_id: str) -> None:
        await self.collection.delete_one({"_id": session_id})


class AuditLog:
    """Entries by ULID ``_id`` (time order); searched newest first with a cursor."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db.audit

    async def record(self, entry: AuditEntry) -> None:
        await self.collection.insert_one({"_id": new_id(), **entry.model_dump()})

    async def search(
        self, filters: dict[str, str], limit: int, before: str | None
    ) -> list[dict[str, Any]]:
        query: Document = dict(filters)
        query.update(before_filter(before))
        cursor = self.collection.find(query).sort("_id", -1).limit(limit)
        return [{"id": doc.pop("_id"), **doc} async for doc in cursor]


class Upstreams:
    """The four services behind ``/api/<service>/``; one HTTP client each."""

    def __init__(self, urls: dict[str, str], timeout: float) -> None:
        self.clients = {
            service: httpx.AsyncClient(base_url=url, timeout=timeout)
            for service, url in urls.items()
        }

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()
