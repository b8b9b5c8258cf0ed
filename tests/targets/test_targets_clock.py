"""Response targets in business time: weekends, public holidays, both DST changes of 2026 in
Europe/Berlin and America/New_York, pauses for the reporter, severity changes and reopens.

Expected instants are written as local wall-clock times and worked out by hand from the calendar:
2026-03-29 (Berlin, CET->CEST), 2026-10-25 (Berlin, back), 2026-03-08 and 2026-11-01 (New York).
"""

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from bot.policy import Policy, Targets
from bot.runtime.settings import ConfigError
from bot.targets.business_time import BusinessCalendar
from bot.targets.service import Clock, ClockKind, Threshold, calendar_for, clock_state, describe, target_for

BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")


def at(zone, *args) -> datetime:
    return datetime(*args, tzinfo=zone).astimezone(timezone.utc)


def cal(zone="Europe/Berlin", **kw) -> BusinessCalendar:
    return BusinessCalendar(timezone=zone, **kw)


def test_a_report_filed_on_friday_afternoon_is_due_on_monday():
    c = cal()
    filed = at(BERLIN, 2026, 11, 27, 16, 0)  # Friday 16:00, 1 h of the day left
    assert c.add(filed, timedelta(hours=4)) == at(BERLIN, 2026, 11, 30, 12, 0)
    assert c.elapsed(filed, at(BERLIN, 2026, 11, 30, 12, 0)) == timedelta(hours=4)


def test_filed_out_of_hours_starts_at_the_next_opening():
    c = cal()
    assert c.add(at(BERLIN, 2026, 11, 28, 23, 0), timedelta(hours=1)) == at(BERLIN, 2026, 11, 30, 10, 0)  # Saturday night
    assert c.add(at(BERLIN, 2026, 12, 1, 6, 30), timedelta(minutes=30)) == at(BERLIN, 2026, 12, 1, 9, 30)


def test_public_holidays_and_extra_closed_dates_are_skipped():
    # Berlin: 2026-12-25 and 26 are holidays (Fri, Sat); the team also closes on the 24th (Thu).
    c = cal(country="DE", subdivision="BE", closed_dates=frozenset({date(2026, 12, 24)}))
    filed = at(BERLIN, 2026, 12, 23, 15, 0)  # Wednesday, 2 h left
    assert c.add(filed, timedelta(hours=3)) == at(BERLIN, 2026, 12, 28, 10, 0)
    # Women's Day (8 March) is a holiday in Berlin only: 2027-03-08 is a Monday.
    assert c.add(at(BERLIN, 2027, 3, 5, 17, 0), timedelta(hours=1)) == at(BERLIN, 2027, 3, 9, 10, 0)
    assert cal(country="DE", subdivision="BY").add(at(BERLIN, 2027, 3, 5, 17, 0), timedelta(hours=1)) == at(BERLIN, 2027, 3, 8, 10, 0)


@pytest.mark.parametrize(
    "zone, friday, monday",
    [
        (BERLIN, (2026, 3, 27), (2026, 3, 30)),  # clocks forward on Sunday 29 March
        (BERLIN, (2026, 10, 23), (2026, 10, 26)),  # back on Sunday 25 October
        (NEW_YORK, (2026, 3, 6), (2026, 3, 9)),  # forward on Sunday 8 March
        (NEW_YORK, (2026, 10, 30), (2026, 11, 2)),  # back on Sunday 1 November
    ],
)
def test_across_a_dst_change_working_hours_stay_local(zone, friday, monday):
    c = cal(zone.key)
    filed = at(zone, *friday, 15, 0)
    due = c.add(filed, timedelta(hours=4))  # 2 h on Friday, 2 h on Monday: 11:00 local whatever the offset
    assert due == at(zone, *monday, 11, 0)
    assert c.elapsed(filed, due) == timedelta(hours=4)
    # A business day is the day's hours, on either side of the change.
    assert c.add(at(zone, *friday, 9, 0), c.day_length * 2) == at(zone, *monday, 17, 0)


def test_dst_on_a_working_sunday():
    """A seven-day team: the change happens on a working day, whose hours are still 09:00–17:00 local."""
    c = cal(working_days=("mon", "tue", "wed", "thu", "fri", "sat", "sun"))
    assert c.elapsed(at(BERLIN, 2026, 3, 29, 0, 0), at(BERLIN, 2026, 3, 30, 0, 0)) == timedelta(hours=8)
    assert c.elapsed(at(BERLIN, 2026, 10, 25, 0, 0), at(BERLIN, 2026, 10, 26, 0, 0)) == timedelta(hours=8)


def test_a_calendar_with_no_working_time_never_falls_due():
    c = cal(country="DE", closed_dates=frozenset(date(2026, 12, 1) + timedelta(days=n) for n in range(2000)))
    assert c.add(at(BERLIN, 2026, 12, 1, 9, 0), timedelta(hours=1)) is None


def test_a_pause_for_the_reporter_moves_the_due_time_by_the_paused_business_time():
    c = cal()
    filed = at(BERLIN, 2026, 12, 1, 9, 0)  # Tuesday
    asked, answered = at(BERLIN, 2026, 12, 1, 10, 0), at(BERLIN, 2026, 12, 2, 11, 0)
    clock = Clock(ClockKind.resolution, filed, pauses=((asked, answered),))
    # Paused: no due time while waiting.
    waiting = clock_state(c, Clock(ClockKind.resolution, filed, pauses=((asked, None),)), timedelta(hours=4), at(BERLIN, 2026, 12, 1, 15, 0))
    assert waiting.paused and waiting.due_at is None and waiting.used == timedelta(hours=1)
    assert "paused" in describe(waiting, at(BERLIN, 2026, 12, 1, 15, 0))
    # Answered: 1 h counted before, 3 h left from 11:00 Wednesday.
    state = clock_state(c, clock, timedelta(hours=4), at(BERLIN, 2026, 12, 2, 12, 0))
    assert state.due_at == at(BERLIN, 2026, 12, 2, 14, 0)
    assert state.warn_at == at(BERLIN, 2026, 12, 2, 13, 0)  # 75 % of 4 h = 3 h
    assert state.used == timedelta(hours=2)


def test_stopping_the_clock_says_met_or_missed():
    c = cal()
    filed = at(BERLIN, 2026, 12, 1, 9, 0)
    met = clock_state(c, Clock(ClockKind.first_response, filed, stopped_at=at(BERLIN, 2026, 12, 1, 9, 59)), timedelta(hours=1), at(BERLIN, 2026, 12, 3, 9, 0))
    missed = clock_state(c, Clock(ClockKind.first_response, filed, stopped_at=at(BERLIN, 2026, 12, 1, 10, 1)), timedelta(hours=1),
                         at(BERLIN, 2026, 12, 3, 9, 0))
    assert met.met is True and missed.met is False
    assert not met.passed(Threshold.breach, at(BERLIN, 2026, 12, 9, 0, 0))
    assert describe(met, filed) == "first response met" and describe(missed, filed) == "first response missed"


def test_thresholds_and_wording_on_a_running_clock():
    c = cal()
    filed = at(BERLIN, 2026, 12, 1, 9, 0)
    state = clock_state(c, Clock(ClockKind.first_response, filed), timedelta(hours=4), at(BERLIN, 2026, 12, 1, 10, 50))
    assert describe(state, at(BERLIN, 2026, 12, 1, 10, 50)) == "first response due in 2 h 10 m"
    assert not state.passed(Threshold.warning, at(BERLIN, 2026, 12, 1, 11, 59))
    assert state.passed(Threshold.warning, at(BERLIN, 2026, 12, 1, 12, 0))
    assert state.passed(Threshold.breach, at(BERLIN, 2026, 12, 1, 13, 0))
    later = at(BERLIN, 2026, 12, 2, 14, 0)
    assert describe(clock_state(c, Clock(ClockKind.first_response, filed), timedelta(hours=4), later), later) == "first response overdue by 1 d 1 h"


def test_severity_change_and_reopen_through_the_policy():
    policy = Policy.model_validate({"targets": {
        "timezone": "America/New_York", "hours": "09:00-17:00", "holidays_country": "US",
        "severities": {"blocker": {"first_response": "1h", "resolution": "1d"}, "high": {"first_response": "4h", "resolution": "3d"},
                       "low": {"first_response": "3d"}},
    }})
    c = calendar_for(policy.targets)
    assert target_for(policy.targets, "blocker", ClockKind.resolution, c) == timedelta(hours=8)
    assert target_for(policy.targets, "low", ClockKind.resolution, c) is None
    assert target_for(policy.targets, "medium", ClockKind.first_response, c) is None
    filed = at(NEW_YORK, 2026, 11, 25, 16, 0)  # Wednesday before Thanksgiving (26th, a holiday); Friday is a working day
    clock = Clock(ClockKind.first_response, filed)
    high = clock_state(c, clock, target_for(policy.targets, "high", ClockKind.first_response, c), filed)
    assert high.due_at == at(NEW_YORK, 2026, 11, 27, 12, 0)
    blocker = clock_state(c, clock, target_for(policy.targets, "blocker", ClockKind.first_response, c), filed)
    assert blocker.due_at == at(NEW_YORK, 2026, 11, 25, 17, 0)
    # Reopened on Monday 30 November at 15:30: a new resolution clock of one business day.
    reopened = Clock(ClockKind.resolution, at(NEW_YORK, 2026, 11, 30, 15, 30))
    assert clock_state(c, reopened, timedelta(hours=8), reopened.started_at).due_at == at(NEW_YORK, 2026, 12, 1, 15, 30)


@pytest.mark.parametrize(
    "section, field",
    [
        ({"severities": {"urgent": {"first_response": "1h"}}}, "targets.severities"),
        ({"severities": {"low": {"first_response": "0h"}}}, "targets.severities.low.first_response"),
        ({"severities": {"low": {"first_response": "-2h"}}}, "targets.severities.low.first_response"),
        ({"hours": "17:00-09:00"}, "targets.hours"),
        ({"holidays_country": "XX"}, "targets.holidays_country"),
    ],
)
def test_bad_targets_stop_start_up_with_one_line_naming_the_field(tmp_path, section, field):
    import yaml

    from bot.runtime.config import load_policy

    path = tmp_path / "policy.yml"
    path.write_text(yaml.safe_dump({"targets": section}))
    with pytest.raises(ConfigError) as err:
        load_policy(path)
    assert field in str(err.value) and "\n" not in str(err.value).strip()


def test_off_until_set():
    assert not Targets().enabled
    assert Targets.model_validate({"severities": {"high": {"first_response": "4h"}}}).enabled
    assert BusinessCalendar().day_length == timedelta(hours=8) and BusinessCalendar().opens == time(9)


def test_round_the_clock_hours_count_real_time_through_dst():
    c = calendar_for(Targets.model_validate({"timezone": "Europe/Berlin", "hours": "00:00-24:00",
                                             "working_days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}))
    start = at(BERLIN, 2026, 3, 28, 22, 0)
    assert c.add(start, timedelta(hours=5)) == start + timedelta(hours=5)
    assert c.elapsed(at(BERLIN, 2026, 3, 29, 0, 0), at(BERLIN, 2026, 3, 30, 0, 0)) == timedelta(hours=23)
    assert c.elapsed(at(BERLIN, 2026, 10, 25, 0, 0), at(BERLIN, 2026, 10, 26, 0, 0)) == timedelta(hours=25)


@pytest.mark.parametrize("zone, country, subdivision", [("Europe/Berlin", "DE", "BE"), ("America/New_York", "US", "NY")])
def test_elapsed_from_running_sums_equals_walking_the_calendar(zone, country, subdivision):
    """``elapsed`` adds per-day sums instead of walking every day; over random spans across
    weekends, holidays and both DST changes it gives what walking the working windows gives."""
    import random

    c = cal(zone, country=country, subdivision=subdivision, closed_dates=frozenset({date(2026, 12, 24)}))
    walker = cal(zone, country=country, subdivision=subdivision, closed_dates=frozenset({date(2026, 12, 24)}))

    def walk(start, end):
        total = timedelta()
        for opens, closes in walker.windows(start):
            if opens >= end:
                break
            total += max(timedelta(), min(closes, end) - max(opens, start))
        return total

    rng = random.Random(17)
    base = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for _ in range(300):
        start = base + timedelta(minutes=rng.randrange(0, 366 * 24 * 60))
        end = start + timedelta(minutes=rng.randrange(0, 200 * 24 * 60))
        assert c.elapsed(start, end) == walk(start, end), (start, end)
    assert c.elapsed(base - timedelta(days=800), base) == walk(base - timedelta(days=800), base)  # before the sums began
