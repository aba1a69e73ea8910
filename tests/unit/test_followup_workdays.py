"""Working-day deadlines across National Day 2026 (10-01..10-07 off, Saturday 10-10 worked)."""

from datetime import date, datetime

import pytest
from pydantic import ValidationError

from services.followup.domain import Case, Policy, Rules, TimerKind
from services.followup.workdays import Span, WorkCalendar, YearCalendar
from shared.clock import BEIJING

from .test_followup_domain import assigned

CAL = WorkCalendar()
# Tuesday before the holiday, 10:00 Beijing time.
TUESDAY = datetime(2026, 9, 29, 10, 0, tzinfo=BEIJING)


def bj(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=BEIJING)


def test_official_calendar_knows_holidays_and_the_adjusted_saturday() -> None:
    assert not CAL.is_workday(date(2026, 10, 1))
    assert not CAL.is_workday(date(2026, 10, 7))
    assert CAL.is_workday(date(2026, 10, 10))  # 调休 Saturday
    assert not CAL.is_workday(date(2026, 10, 11))
    assert CAL.next_workday(date(2026, 9, 30)) == date(2026, 10, 8)


def test_deadlines_skip_the_holiday_and_count_the_adjusted_saturday() -> None:
    # 7 calendar days ends on 10-06, a holiday: the deadline moves to the next working day.
    assert CAL.due(TUESDAY, Span(amount=7, unit="days")) == bj(10, 9)
    assert CAL.due(TUESDAY, Span(amount=1, unit="working_days")) == bj(10, 1)
    # 15 working days: 09-30, 10-08, 10-09, 10-10 (Sat), 10-12 ... 10-26.
    assert CAL.due(TUESDAY, Span(amount=15, unit="working_days")) == bj(10, 27)
    assert CAL.due(TUESDAY, Span(amount=2, unit="hours")) == bj(9, 29, 12)


def test_reminder_urge_and_supervision_fire_at_working_day_times() -> None:
    case, timers = Case.open(assigned(), TUESDAY.astimezone(BEIJING), Rules(CAL, Policy()))
    at = {t.kind: t.fire_at for t in timers}
    assert case.assignments["housing"].due_at == bj(10, 9)  # end of Thursday 10-08
    # 黄牌 of the 1-working-day clocks (响应, 签收) would fall on the day of 交办 itself, before
    # it: none. 红牌 comes on the working day after the due day, past the holiday.
    assert at == {
        TimerKind.SIGN_DUE: bj(10, 1),  # end of Wednesday 09-30
        TimerKind.SIGN_RED: bj(10, 8, 9),
        TimerKind.RESPOND_DUE: bj(10, 1),
        TimerKind.RESPOND_RED: bj(10, 8, 9),
        TimerKind.REPLY_RED: bj(10, 9, 9),
        # The working day before the due day 10-08: the reminder, with the 办结 clock's 黄牌.
        TimerKind.REMINDER: bj(9, 30, 9),
        TimerKind.REPLY_DUE: bj(10, 9),
        TimerKind.URGE: bj(10, 9, 9),  # 催办: the working day after the due date
        TimerKind.SUPERVISE_1: bj(10, 14, 9),  # +5: 10-09, 10-10 (Sat), 10-12, 10-13, 10-14
        TimerKind.SUPERVISE_2: bj(10, 21, 9),  # +10: 10-15, 10-16, 10-19, 10-20, 10-21
    }


def test_a_loaded_year_overrides_the_fallback() -> None:
    plain = WorkCalendar()
    assert plain.is_workday(date(2099, 1, 1)) is True  # unknown year: Monday-Friday
    assert plain.source(2099) == "assumed"
    assert plain.source(2026) == "official"
    loaded = WorkCalendar(
        [YearCalendar(year=2099, holidays=[date(2099, 1, 1)], workdays=[date(2099, 1, 3)])]
    )
    assert loaded.source(2099) == "loaded"
    assert not loaded.is_workday(date(2099, 1, 1))
    assert loaded.is_workday(date(2099, 1, 3))  # a Saturday worked


def test_an_allowance_is_at_most_a_year_in_its_unit() -> None:
    assert Span(amount=250, unit="working_days").amount == 250
    for amount, unit in ((251, "working_days"), (367, "days"), (10**20, "minutes")):
        with pytest.raises(ValidationError, match="期限不得超过一年"):
            Span(amount=amount, unit=unit)
