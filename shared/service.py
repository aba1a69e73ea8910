"""What every service process has: FastAPI app with problem+json errors, body size limit,
/health, /ready and /metrics, and a lifespan that runs the event bus and the outbox sweeper."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo import AsyncMongoClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import clock, problems
from shared.auth import AUTH_DB, RateLimits
from shared.messaging import EventBus
from shared.problems import Problem
from shared.settings import Settings
from shared.store import Document, Repository, VersionConflict, run_sweeper

log = logging.getLogger("minyi.service")


class BodySizeLimit:
    """Refuse bodies over ``limit`` bytes with 413, whether or not Content-Length is sent.
    Upload endpoints get their own (larger, still bounded) limit by path prefix."""

    def __init__(
        self, app: ASGIApp, limit: int, prefix_limits: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        # Longest prefix first, so a more specific path wins.
        self.prefix_limits = sorted((prefix_limits or {}).items(), key=lambda p: -len(p[0]))

    def limit_for(self, path: str) -> int:
        return next((n for prefix, n in self.prefix_limits if path.startswith(prefix)), self.limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > limit:
                await self._refuse(scope, receive, send, limit)
            else:
                await self.app(scope, receive, send)
            return
        # No declared length: buffer the body (at most ``limit`` bytes) before the app sees it.
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                await self._refuse(scope, receive, send, limit)
                return
            more = message.get("more_body", False)
        pending: list[Message] = [{"type": "http.request", "body": b"".join(chunks)}]

        async def replay() -> Message:
            return pending.pop() if pending else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        request = Request(scope, receive)
        response = problems.problem_response(
            request, 413, "请求过大 / Content too large", f"Body larger than {limit} bytes."
        )
        await response(scope, receive, send)


def service_app(
    service: str,
    description: str,
    settings: Settings,
    bus: EventBus | None,
    mongo: AsyncMongoClient[Document],
    routers: Sequence[APIRouter],
    repositories: Sequence[Repository[Any]] = (),
    on_stop: Sequence[Callable[[], Awaitable[None]]] = (),
    upload_limits: Mapping[str, int] | None = None,
    on_start: Sequence[Callable[[], Awaitable[None]]] = (),
    ready_notes: Callable[[], Awaitable[dict[str, Any]]] | None = None,
) -> FastAPI:
    """Assemble one service's HTTP app and process lifespan. ``upload_limits`` maps path
    prefixes to body limits larger than ``settings.max_body_bytes``; ``on_start`` runs after
    the bus has started, before requests are served; ``ready_notes`` adds what operators should
    know to ``/ready`` without making the service unready (e.g. an unknown holiday year)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if bus:
            await bus.start()
        for start in on_start:
            await start()
        sweeper = asyncio.create_task(
            run_sweeper(list(repositories), settings.outbox_sweep_seconds)
        )
        log.info("started", extra={"service": service})
        if clock.offset():
            log.warning(
                "clock offset %s in effect (%s): this process is not on real time",
                clock.offset(),
                clock.OFFSET_ENV,
                extra={"service": service},
            )
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            if bus:
                await bus.stop()
            for stop in on_stop:
                await stop()
            for repository in repositories:
                await repository.settle()  # outbox cleanups still waiting for a ride
            await mongo.close()
            log.info("stopped", extra={"service": service})

    app = FastAPI(
        title=f"Minyi {service}",
        description=description,
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.auth_db = mongo[settings.database(AUTH_DB)]
    app.state.rate_limits = RateLimits(
        mongo[settings.database(service)].rate_limits, settings.rate_limit_per_minute
    )
    problems.install(app)

    async def on_conflict(request: Request, exc: Exception) -> Response:
        # Other writers kept winning (retry_on_conflict gave up): busy, not broken.
        response = problems.problem_response(
            request, 503, "服务繁忙 / Busy", "The record was being changed by others; try again."
        )
        response.headers["Retry-After"] = "1"
        return response

    app.add_exception_handler(VersionConflict, on_conflict)
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes, prefix_limits=upload_limits)

    ops = APIRouter(tags=["operations"])

    @ops.get("/health", summary="Liveness")
    async def health() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @ops.get("/ready", summary="Readiness: broker and database reachable")
    async def ready() -> dict[str, Any]:
        broker_ok = await bus.ping() if bus else True
        try:
            await mongo.admin.command("ping")
            db_ok = True
        except Exception:
            db_ok = False
        if not (broker_ok and db_ok):
            raise Problem(
                503,
                detail=f"broker={'ok' if broker_ok else 'down'}, "
                f"database={'ok' if db_ok else 'down'}",
            )
        notes = await ready_notes() if ready_notes else {}
        return {"status": "ready", "service": service, **notes}

    @ops.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(ops)
    for router in routers:
        app.include_router(router)
    return app
