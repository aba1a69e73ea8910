"""Console composition root: one origin for the browser — the built app, login and sessions,
and ``/api/<service>/…`` to the four services."""

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse

from shared.auth import AUTH_DB
from shared.service import service_app
from shared.settings import Settings, get_settings
from shared.store import mongo_client

from . import api
from .adapters import AuditLog, Directory, Passwords, Sessions, Upstreams
from .config import ConsoleSettings
from .handlers import ConsolePorts

DESCRIPTION = "控制台 — the Chinese web application: personal login, sessions, audit log."

NOT_BUILT = """<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>民意直通车</title>
<p>控制台页面尚未构建：请运行 <code>make web</code>（或 <code>make run</code>）。</p></html>"""


def create_app(settings: Settings | None = None, own: ConsoleSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    own = own or ConsoleSettings()
    mongo = mongo_client(settings)
    db = mongo[settings.database("console")]
    upstreams = Upstreams(own.upstreams, own.upstream_timeout_seconds)
    ports = ConsolePorts(
        directory=Directory(db),
        sessions=Sessions(db, settings.secret),
        audit=AuditLog(db),
        passwords=Passwords(),
        auth_db=mongo[settings.database(AUTH_DB)],
        lockout=own.lockout,
        policy=own.sessions,
    )
    app = service_app(
        "console",
        DESCRIPTION,
        settings,
        None,
        mongo,
        [api.console, api.passthrough],
        on_stop=[upstreams.aclose],
        upload_limits={"/api/": own.max_upload_bytes},
    )
    app.state.ports = ports
    app.state.upstreams = upstreams
    app.state.secure_cookies = own.secure_cookies
    _serve_app(app, own.web_dist)
    return app


def _serve_app(app: FastAPI, dist: Path) -> None:
    """The built files as they are; any other path is the app's (its router decides)."""
    root = dist.resolve()

    @app.get("/{path:path}", include_in_schema=False, response_model=None)
    async def browser_app(path: str) -> FileResponse | HTMLResponse:
        wanted = (root / path).resolve()
        if path and wanted.is_file() and wanted.is_relative_to(root):
            return FileResponse(wanted)
        index = root / "index.html"
        return FileResponse(index) if index.is_file() else HTMLResponse(NOT_BUILT, 503)
