"""Configuration from environment variables (prefix ``MINYI_``) with working local defaults."""

from datetime import datetime
from functools import lru_cache
from urllib.parse import quote, urlsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.keys import KeyRing

SERVICES = ("intake", "routing", "followup", "notification")
DEFAULT_PORTS = {
    "console": 8000,
    "intake": 8001,
    "routing": 8002,
    "followup": 8003,
    "notification": 8004,
}

# Outside the local dev stack (MINYI_ENV=local) a secret shorter than this, or one of these
# published ones, stops the process: anyone who read the code would know it.
MIN_SECRET_LENGTH = 32
KNOWN_SECRETS = frozenset({"minyi-dev-secret-change-me", "minyi-dev", "guest", "admin", "secret"})


class InsecureSettings(Exception):
    """A secret is missing, short or known; the message (one line) names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MINYI_")

    mongo_url: str = "mongodb://127.0.0.1:27017/"
    # Every database name starts with this, so a test run can live beside a demo run.
    db_prefix: str = "minyi"

    amqp_host: str = "127.0.0.1"
    amqp_port: int = 5672
    amqp_vhost: str = "minyi"
    # A broker cluster's nodes as "host:port" entries (JSON list); when set, amqp_host and
    # amqp_port are not used. A process connects to the first and, when it loses a node,
    # to the next (shared.messaging.FailoverConnection); give processes the list in different
    # orders to spread their connections.
    amqp_nodes: list[str] = Field(default_factory=list)
    # Each service connects as its own RabbitMQ user ``<vhost>-<service>`` with its own
    # password: JSON, e.g. MINYI_AMQP_PASSWORDS='{"intake": "..."}'. A deployment gives each
    # service only its own; `minyi broker setup` needs all four.
    amqp_passwords: dict[str, str] = {}
    rabbit_admin_url: str = "http://guest:guest@127.0.0.1:15672"
    # "local" only in the local dev stack (deploy/local, the tests): there the broker admin
    # may be guest and the store may run without a password.
    env: str = ""

    # Handler concurrency per process: FastStream runs this many messages at once.
    prefetch: int = 16
    max_attempts: int = 5
    retry_delays_ms: list[int] = Field(default_factory=lambda: [1000, 5000, 30000])
    delivery_limit: int = 10
    # Messages a department's own queue holds before the oldest move to minyi.dept-overflow.
    department_queue_max_length: int = 100_000
    outbox_sweep_seconds: float = 5.0

    # One key per purpose (no defaults): receipts' tracking codes and feedback links. To rotate
    # one, move it to *_PREVIOUS, set MINYI_PREVIOUS_KEYS_UNTIL and a new key: codes signed
    # with the old one keep working until then.
    tracking_key: str = ""
    tracking_key_previous: str = ""
    feedback_key: str = ""
    feedback_key_previous: str = ""
    previous_keys_until: datetime | None = None
    # The console derives each session's key at the services from it (rotating it ends every
    # console session).
    session_key: str = ""
    followup_public_url: str = "http://127.0.0.1:8003"
    webhook_timeout_seconds: float = 5.0
    max_body_bytes: int = 1_000_000
    # Requests per API key and minute, per service (submit, import, poll …), all replicas together.
    rate_limit_per_minute: int = 600

    def amqp_user(self, service: str) -> str:
        return f"{self.amqp_vhost}-{service}"

    def amqp_url(self, service: str) -> str:
        return self.amqp_urls(service)[0]

    def amqp_urls(self, service: str) -> list[str]:
        """The service user's URL of every broker node."""
        user = quote(self.amqp_user(service), safe="")
        password = quote(self.amqp_passwords.get(service, ""), safe="")
        vhost = quote(self.amqp_vhost, safe="")
        nodes = self.amqp_nodes or [f"{self.amqp_host}:{self.amqp_port}"]
        return [f"amqp://{user}:{password}@{node}/{vhost}" for node in nodes]

    def tracking_keys(self) -> KeyRing:
        return KeyRing(
            "tracking", self.tracking_key, self.tracking_key_previous, self.previous_keys_until
        )

    def feedback_keys(self) -> KeyRing:
        return KeyRing(
            "feedback", self.feedback_key, self.feedback_key_previous, self.previous_keys_until
        )

    def check_secrets(self, service: str) -> None:
        """Raise InsecureSettings unless every secret ``service`` uses is set, and — outside
        the local dev stack — long and not a published one. ``service`` "broker-setup" is the
        administrator's `minyi broker setup`, which sets every service's password."""
        needed: dict[str, str] = {}
        if service == "intake":
            needed["MINYI_TRACKING_KEY"] = self.tracking_key
            if self.tracking_key_previous:
                needed["MINYI_TRACKING_KEY_PREVIOUS"] = self.tracking_key_previous
        if service == "followup":
            needed["MINYI_FEEDBACK_KEY"] = self.feedback_key
            if self.feedback_key_previous:
                needed["MINYI_FEEDBACK_KEY_PREVIOUS"] = self.feedback_key_previous
        if service == "console":
            needed["MINYI_SESSION_KEY"] = self.session_key
        brokered = SERVICES if service == "broker-setup" else (service,)
        for s in (s for s in brokered if s in SERVICES):  # the console uses no broker
            needed[f"MINYI_AMQP_PASSWORDS[{s}]"] = self.amqp_passwords.get(s, "")
        local = self.env == "local"
        if not local and service == "broker-setup":
            admin_password = urlsplit(self.rabbit_admin_url).password
            needed["the password in MINYI_RABBIT_ADMIN_URL"] = admin_password or ""
        elif not local:
            needed["the password in MINYI_MONGO_URL"] = urlsplit(self.mongo_url).password or ""
        for name, value in needed.items():
            if not value:
                raise InsecureSettings(f"{name} is not set; {service} will not start without it")
            if not local and (len(value) < MIN_SECRET_LENGTH or value in KNOWN_SECRETS):
                raise InsecureSettings(
                    f"{name} is a known or short secret (fewer than {MIN_SECRET_LENGTH} "
                    f"characters); outside the local dev stack (MINYI_ENV=local) {service} "
                    "refuses to start with it"
                )

    def own_hosts(self) -> set[str]:
        """The hosts of the broker and the store, which no outbound request may reach."""
        seeds = urlsplit(self.mongo_url).netloc.rsplit("@", 1)[-1].split(",")
        hosts = {self.amqp_host, urlsplit(self.rabbit_admin_url).hostname}
        hosts |= {urlsplit(f"//{seed}").hostname for seed in seeds}
        return {h for h in hosts if h}

    def database(self, name: str) -> str:
        return f"{self.db_prefix}_{name}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
