"""The official PRC working-day calendar (法定节假日 and 调休 adjusted workdays) and deadline
arithmetic on it. Pure: years the ``chinese_calendar`` library does not know yet are passed in
as ``YearCalendar`` records (loaded from the followup database by the adapters)."""

import logging
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal

import chinese_calendar
from pydantic import BaseModel, Field, model_validator

from shared.clock import BEIJING

log = logging.getLogger("minyi.followup.workdays")


class YearCalendar(BaseModel):
    """One year's official holidays and adjusted workdays (调休上班日), as the State Council
    publishes them; weekdays not listed as holidays and listed workdays are working days."""

    year: int = Field(ge=2000, le=2100)
    holidays: list[date] = Field(max_length=366)
    workdays: list[date] = Field(default_factory=list, max_length=366)


# No allowance is longer than a year (and a number past 64 bits could not be stored).
LONGEST = {"minutes": 525_600, "hours": 8_760, "days": 366, "working_days": 250}


class Span(BaseModel):
    """A time allowance: plain minutes/hours, calendar days (a deadline falling on a rest day
    moves to the next working day, as in Chinese law), or working days."""

    amount: int = Field(gt=0)
    unit: Literal["minutes", "hours", "days", "working_days"]

    @model_validator(mode="after")
    def at_most_a_year(self) -> "Span":
        if self.amount > LONGEST[self.unit]:
            raise ValueError(
                f"at most {LONGEST[self.unit]} {self.unit} (one year) 期限不得超过一年"
            )
        return self

    def is_clock_time(self) -> bool:
        return self.unit in ("minutes", "hours")

    def as_timedelta(self) -> timedelta:
        return (
            timedelta(minutes=self.amount)
            if self.unit == "minutes"
            else timedelta(hours=self.amount)
        )


@lru_cache(maxsize=4096)
def _official_workday(day: date) -> bool | None:
    """The library's answer, None for a year it does not know (cached: it is slow per call)."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return None


# Where a year's working days come from: an administrator's loaded year, the library's
# official data, or — for a year neither knows — assumed Monday-Friday.
CalendarSource = Literal["loaded", "official", "assumed"]

# Years this process has already warned about (a line once per process, not per deadline).
_warned: set[int] = set()


class WorkCalendar:
    """Working days from the library, overridden by loaded years; unknown years fall back to
    Monday-Friday (and say so in the log, once per process) so that deadlines are never
    refused."""

    def __init__(self, loaded: list[YearCalendar] | None = None, office_opens: time = time(9)):
        self.loaded = {y.year: y for y in loaded or []}
        self.office_opens = office_opens

    def is_workday(self, day: date) -> bool:
        if (year := self.loaded.get(day.year)) is not None:
            return day in year.workdays or (day.weekday() < 5 and day not in year.holidays)
        official = _official_workday(day)
        if official is None:
            if day.year not in _warned:
                _warned.add(day.year)
                log.warning(
                    "no holiday calendar for %d: its deadlines count Monday-Friday until an "
                    "administrator loads the year (PUT /calendar/%d)",
                    day.year,
                    day.year,
                )
            return day.weekday() < 5
        return official

    def source(self, year: int) -> CalendarSource:
        """Where the year's working days come from."""
        if year in self.loaded:
            return "loaded"
        return "official" if _official_workday(date(year, 6, 1)) is not None else "assumed"

    def next_workday(self, day: date) -> date:
        """The first working day after ``day``."""
        day += timedelta(days=1)
        while not self.is_workday(day):
            day += timedelta(days=1)
        return day

    def previous_workday(self, day: date) -> date:
        """The last working day before ``day``."""
        day -= timedelta(days=1)
        while not self.is_workday(day):
            day -= timedelta(days=1)
        return day

    def add_workdays(self, day: date, n: int) -> date:
        """The ``n``-th working day after ``day`` (``day`` itself does not count)."""
        for _ in range(n):
            day = self.next_workday(day)
        return day

    def end_of(self, day: date) -> datetime:
        """24:00 Beijing time of ``day`` (in UTC, as stored): a deadline "on day X" may be met
        all of X."""
        return datetime.combine(day + timedelta(days=1), time(0), BEIJING).astimezone(UTC)

    def opening_of(self, day: date) -> datetime:
        """When offices open on ``day`` (Beijing time): reminders and 催办 go out then."""
        return datetime.combine(day, self.office_opens, BEIJING).astimezone(UTC)

    def due(self, start: datetime, span: Span) -> datetime:
        """The deadline ``span`` after ``start``."""
        if span.is_clock_time():
            return start + span.as_timedelta()
        local = start.astimezone(BEIJING).date()
        if span.unit == "working_days":
            return self.end_of(self.add_workdays(local, span.amount))
        last = local + timedelta(days=span.amount)
        return self.end_of(last if self.is_workday(last) else self.next_workday(last))

    def due_day(self, due: datetime) -> date:
        """The Beijing calendar day a deadline belongs to (24:00 belongs to the day before)."""
        return (due.astimezone(BEIJING) - timedelta(microseconds=1)).date()

    def workdays_after(self, due: datetime, n: int) -> datetime:
        """Office opening on the ``n``-th working day after the deadline's day (n ≥ 1)."""
        return self.opening_of(self.add_workdays(self.due_day(due), n))

    def workday_before(self, due: datetime) -> datetime:
        """Office opening on the last working day before the deadline's day."""
        return self.opening_of(self.previous_workday(self.due_day(due)))
