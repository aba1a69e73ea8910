"""The one clock every Minyi process reads, and the time zone its business runs on.

Business times (when an opinion was received, a reply given, a deadline fell) come from
``utcnow()``. ``MINYI_CLOCK_OFFSET_SECONDS`` shifts it for a whole test run or drill — every
service and the tests get the same offset, so they agree on "now" whatever today's date is;
it is never set in production. Followup's movable test clock builds on this one."""

import os
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

OFFSET_ENV = "MINYI_CLOCK_OFFSET_SECONDS"

# Deadlines, reporting months and tracking-number years are official business: Beijing time.
BEIJING = ZoneInfo("Asia/Shanghai")

_offset = timedelta(seconds=float(os.environ.get(OFFSET_ENV) or 0))


def utcnow() -> datetime:
    """Now, in UTC, as this process's clock reads it."""
    return datetime.now(UTC) + _offset


def offset() -> timedelta:
    """How far this process's clock is from the machine's (zero outside tests and drills)."""
    return _offset


def beijing_year(at: datetime) -> int:
    """The calendar year of an instant in Beijing (2026-12-31 16:30 UTC is already 2027)."""
    return at.astimezone(BEIJING).year


def closing_day(deadline: datetime) -> date:
    """The day a deadline stored as 24:00 Beijing time closes: "by 12-22" is 12-23 00:00."""
    return (deadline.astimezone(BEIJING) - timedelta(microseconds=1)).date()
