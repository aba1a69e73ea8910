"""Intake composition root."""

import logging
from datetime import timedelta

from fastapi import FastAPI
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.files import ChunkStore
from shared.messaging import EventBus
from shared.service import service_app
from shared.settings import Settings, get_settings
from shared.store import Repository, mongo_client

from . import api, consumers, handlers
from .adapters import DuplicateEntries, ImportJobs, RequestClaims, TrackingNumbers
from .domain import Member, Opinion
from .duplicates import DuplicateIndex

DESCRIPTION = (
    "登记、汇总 — district offices register opinions one by one or by importing a sheet; "
    "each gets a tracking number at once; near-duplicates of open opinions become 附议."
)

log = logging.getLogger("minyi.intake")


class IntakeSettings(BaseSettings):
    """Intake's own knobs (environment prefix ``MINYI_INTAKE_``)."""

    model_config = SettingsConfigDict(env_prefix="MINYI_INTAKE_")

    duplicate_window_days: int = 30
    # Estimated Jaccard similarity of character 3-grams; see `minyi bench intake-duplicates`.
    duplicate_threshold: float = 0.4
    import_max_bytes: int = 20_000_000
    attachment_max_bytes: int = 10_000_000


def create_app(settings: Settings | None = None, own: IntakeSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    own = own or IntakeSettings()
    window = timedelta(days=own.duplicate_window_days)
    bus = EventBus("intake", settings)
    mongo = mongo_client(settings)
    db = mongo[settings.database("intake")]
    opinions = Repository(db.opinions, Opinion, bus)
    members = Repository(db.members, Member, bus)
    intake = handlers.Intake(
        opinions=opinions,
        members=members,
        numbers=TrackingNumbers(db),
        claims=RequestClaims(db),
        jobs=ImportJobs(db),
        attachments=ChunkStore(db.attachment_chunks),
        index=DuplicateIndex(own.duplicate_threshold, window),
        entries=DuplicateEntries(db),
        tracking_keys=settings.tracking_keys(),
    )
    consumers.subscribe(bus, intake)

    async def start() -> None:
        count = await handlers.load_index(intake, window)
        log.info("duplicate index loaded with %d open opinions", count)
        await handlers.resume_imports(intake)

    app = service_app(
        "intake",
        DESCRIPTION,
        settings,
        bus,
        mongo,
        [api.router, api.imports, api.attachments, api.tracking, api.members],
        [opinions, members],
        upload_limits={"/imports": own.import_max_bytes, "/attachments": own.attachment_max_bytes},
        on_start=[start],
    )
    app.state.intake = intake
    return app
