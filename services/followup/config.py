"""Follow-up configuration from environment variables (prefix ``MINYI_FOLLOWUP_``): the SLA
norms and timer cadence. JSON values, e.g. ``MINYI_FOLLOWUP_POLICY='{"extensions_allowed": 2}'``.
(履职积分 rules are not configuration: supervisors set them, stored, through the API.)"""

from datetime import time

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .domain import Policy


class FollowupSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MINYI_FOLLOWUP_")

    policy: Policy = Field(default_factory=Policy)
    office_opens: time = time(9)
    # How often each replica looks for due timers, and how long a claim holds before another
    # replica may take over a timer whose claimant died. Looking is a scan of the pending
    # timers on FerretDB (only _id lookups are indexed there), so not every second: deadlines
    # count in hours and working days, and 15 s late is on time for them.
    tick_seconds: float = 15.0
    timer_lease_seconds: float = 60.0
    timers_per_tick: int = 200
    # A file a department attaches to its reply (答复附件).
    file_max_bytes: int = 10_000_000
    # A clock that tests can move (see adapters.MovableClock); never set in production.
    test_clock: bool = Field(
        default=False, validation_alias=AliasChoices("MINYI_TEST_CLOCK", "test_clock")
    )
