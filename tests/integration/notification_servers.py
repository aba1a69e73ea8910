"""Real local servers the notification channels talk to in tests: an SMTP server (aiosmtpd)
and HTTP receivers (webhook endpoints, an SMS gateway) that answer from a script."""

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tools.demo import serving

# Servers started by hand in tests live between base + 100 and base + 999.
PORT_BASE = int(os.environ.get("MINYI_TEST_PORT_BASE", "18000"))
PORTS = iter(range(PORT_BASE + 100, PORT_BASE + 1000))


def free_port() -> int:
    """The next test port of this run (each server gets its own)."""
    return next(PORTS)


@dataclass
class Mailbox:
    """What an SMTP server received: raw bytes and the parsed message of each mail."""

    raw: list[bytes] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.raw.append(envelope.content)
        return "250 OK"

    def messages(self) -> list[EmailMessage]:
        parser = BytesParser(policy=policy.default)
        return [parser.parsebytes(raw) for raw in self.raw]


@contextlib.contextmanager
def smtp_server(port: int) -> Iterator[Mailbox]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()


@dataclass
class Call:
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP endpoint on 127.0.0.1:``port``. Each request takes the next answer from
    ``script`` (a status code, or "hang" to answer only after ``hang_seconds``); when the
    script is used up it answers ``then``. Every request is kept in ``calls``, the accepted
    (2xx) ones also in ``accepted``."""

    port: int
    script: list[int | str] = field(default_factory=list)
    then: int = 204
    hang_seconds: float = 5.0
    calls: list[Call] = field(default_factory=list)
    accepted: list[Call] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _answer(self, request: Request) -> Response:
        call = Call(dict(request.headers), await request.body())
        self.calls.append(call)
        answer = self.script.pop(0) if self.script else self.then
        if answer == "hang":
            await asyncio.sleep(self.hang_seconds)
            return Response(status_code=204)
        assert isinstance(answer, int)
        if 200 <= answer < 300:
            self.accepted.append(call)
        return Response(status_code=answer)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator["Receiver"]:
        app = Starlette(routes=[Route("/hook", self._answer, methods=["POST"])])
        async with serving(app, self.port):
            yield self
