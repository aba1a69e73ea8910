"""Notification channel settings from environment variables (prefix ``MINYI_``)."""

from pydantic_settings import BaseSettings, SettingsConfigDict


class ChannelSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MINYI_")

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_sender: str = "民意直通车 <noreply@minyi.local>"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = 10.0

    # Any SMS provider behind a small HTTP gateway: POST {"to", "sign", "template_code",
    # "params", "ref"} as JSON. Chinese providers send only pre-approved 签名 and 模板: the
    # template code per event name ("*" for the rest), the parameters filled in by Minyi.
    sms_gateway_url: str = "http://127.0.0.1:8098/sms"
    sms_gateway_token: str = ""
    sms_sign: str = "民意直通车"
    sms_templates: dict[str, str] = {"*": "MINYI_NOTICE", "feedback.requested": "MINYI_FEEDBACK"}
    sms_timeout_seconds: float = 5.0

    # How often an event held by quiet hours is looked at again (a TTL wait queue).
    quiet_recheck_ms: int = 600_000
    # A delivery claimed by a consumer that died is taken over after this long. Longer than a
    # send can take (timeouts are 5 s) and well inside the bus's retry window (1 + 5 + 30 + 30 s
    # by default), or the event of a killed consumer is parked before the lease runs out.
    claim_lease_seconds: float = 20.0
