"""Configuration from environment variables (prefix ``MINYI_``) with working local defaults."""

from functools import lru_cache
from urllib.parse import quote

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES = ("intake", "routing", "followup", "notification")
DEFAULT_PORTS = {
    "console": 8000,
    "intake": 8001,
    "routing": 8002,
    "followup": 8003,
    "notification": 8004,
}


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
    # Each service connects as its own RabbitMQ user ``minyi-<service>``.
    service_password: str = "minyi-dev"
    rabbit_admin_url: str = "http://guest:guest@127.0.0.1:15672"

    # Handler concurrency per process: FastStream runs this many messages at once.
    prefetch: int = 16
    max_attempts: int = 5
    retry_delays_ms: list[int] = Field(default_factory=lambda: [1000, 5000, 30000])
    delivery_limit: int = 10
    outbox_sweep_seconds: float = 5.0

    # Signs feedback links and is the fallback webhook secret seed; change it in production.
    secret: str = "minyi-dev-secret-change-me"
    followup_public_url: str = "http://127.0.0.1:8003"
    webhook_timeout_seconds: float = 5.0
    max_body_bytes: int = 1_000_000

    def amqp_url(self, service: str) -> str:
        return self.amqp_urls(service)[0]

    def amqp_urls(self, service: str) -> list[str]:
        """The service user's URL of every broker node."""
        user = quote(f"minyi-{service}", safe="")
        password = quote(self.service_password, safe="")
        vhost = quote(self.amqp_vhost, safe="")
        nodes = self.amqp_nodes or [f"{self.amqp_host}:{self.amqp_port}"]
        return [f"amqp://{user}:{password}@{node}/{vhost}" for node in nodes]

    def database(self, name: str) -> str:
        return f"{self.db_prefix}_{name}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
