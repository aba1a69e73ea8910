"""Console configuration from environment variables (prefix ``MINYI_CONSOLE_``)."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import DEFAULT_PORTS, SERVICES

from .domain import Lockout, SessionPolicy

# Where `make` builds the browser app (npm + Vite).
WEB_DIST = Path(__file__).parent / "web" / "dist"


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MINYI_CONSOLE_")

    # The services behind /api/<service>/, e.g. MINYI_CONSOLE_UPSTREAMS='{"intake": "http://intake:8000"}'.
    upstreams: dict[str, str] = Field(
        default_factory=lambda: {s: f"http://127.0.0.1:{DEFAULT_PORTS[s]}" for s in SERVICES}
    )
    # Training the router on a few thousand rows takes about half a minute.
    upstream_timeout_seconds: float = 120.0
    sessions: SessionPolicy = Field(default_factory=SessionPolicy)
    lockout: Lockout = Field(default_factory=Lockout)
    # Session cookies are Secure; browsers accept them on http://127.0.0.1 and localhost too.
    secure_cookies: bool = True
    web_dist: Path = WEB_DIST
    # Uploads (XLSX/CSV imports, attachments) pass through the console to intake and followup.
    max_upload_bytes: int = 25_000_000
