"""Follow-up composition root."""

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI

from shared.files import ChunkStore
from shared.messaging import EventBus
from shared.service import service_app
from shared.settings import Settings, get_settings
from shared.store import Repository, mongo_client

from . import api, consumers
from .adapters import (
    Calendars,
    Clock,
    FeedbackTokens,
    Kpis,
    Members,
    MovableClock,
    PointsRuleStore,
    ReviewSettings,
    SystemClock,
    Timers,
)
from .config import FollowupSettings
from .domain import Case, Mark, Report, Theme
from .handlers import FollowupPorts

log = logging.getLogger("minyi.followup")

DESCRIPTION = (
    "承办、跟踪、督办、反馈 — department work on assigned opinions, working-day deadlines, "
    "催办/督办 escalation, 审核 of replies, feedback, 批示/采用, 信息专报 and KPIs."
)


def create_app(settings: Settings | None = None, own: FollowupSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    own = own or FollowupSettings()
    bus = EventBus("followup", settings)
    mongo = mongo_client(settings)
    db = mongo[settings.database("followup")]
    cases = Repository(db.cases, Case, bus)
    themes = Repository(db.themes, Theme, bus)
    reports = Repository(db.reports, Report, bus)
    marks = Repository(db.marks, Mark, bus)
    clock: Clock = MovableClock(db.settings) if own.test_clock else SystemClock()
    lease = timedelta(seconds=own.timer_lease_seconds)
    ports = FollowupPorts(
        cases=cases,
        timers=Timers(db.timers, db.timer_claims, lease, db.timer_agenda, clock),
        calendars=Calendars(db.calendars, own.office_opens),
        kpis=Kpis(db.kpis, db.kpi_totals),
        # 履职积分 per member (一人一档): facts and sums of their own.
        member_kpis=Kpis(db.member_kpis, db.member_kpi_totals, ("member",)),
        clock=clock,
        files=ChunkStore(db.reply_file_chunks),
        tokens=FeedbackTokens(settings.feedback_keys(), settings.followup_public_url),
        policy=own.policy,
        themes=themes,
        members=Members(db.members),
        points_rules=PointsRuleStore(db.points_rules),
        marks=marks,
        reviews=ReviewSettings(db.settings),
        reports=reports,
    )
    consumers.subscribe(bus, ports)
    routers = [api.router, api.files, api.supervision, api.reviews, api.reports, api.admin]
    if isinstance(clock, MovableClock):
        routers.append(api.test_clock)

    async def calendar_notes() -> dict[str, Any]:
        outlook = await ports.calendars.outlook(await clock.now())
        return {"calendar": outlook.model_dump(mode="json")}

    async def warn_of_assumed_calendar() -> None:
        # Once at start; deadline arithmetic adds one line per year and process when it bites.
        if warning := (await ports.calendars.outlook(await clock.now())).warning:
            log.warning(warning)

    app = service_app(
        "followup",
        DESCRIPTION,
        settings,
        bus,
        mongo,
        routers,
        [cases, reports, themes, marks],
        upload_limits={"/files": own.file_max_bytes},
        on_start=[warn_of_assumed_calendar],
        ready_notes=calendar_notes,
    )
    app.state.ports = ports
    app.state.clock = clock

    service_lifespan = app.router.lifespan_context
    replica = f"{socket.gethostname()}:{os.getpid()}"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        # The ticker runs only while the bus is up: timer actions publish through the outbox.
        async with service_lifespan(app) as state:
            ticker = asyncio.create_task(
                consumers.run_ticker(ports, replica, own.tick_seconds, own.timers_per_tick)
            )
            try:
                yield state
            finally:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker

    app.router.lifespan_context = lifespan
    return app
