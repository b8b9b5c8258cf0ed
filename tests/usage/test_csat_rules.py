"""The moment-of-use question's rules as plain functions: sampling by the event's id, quiet hours in
the person's time zone (across midnight and a DST change), the ISO week a window belongs to."""

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from bot.usage.csat import after_quiet, sampled
from bot.usage.weeks import week_start

BERLIN = ZoneInfo("Europe/Berlin")


def test_sampling_is_one_in_n_by_the_id_and_the_same_for_a_retry():
    keys = [f"ci-{i}" for i in range(20_000)]
    chosen = [k for k in keys if sampled(k, 10)]
    assert 1_800 <= len(chosen) <= 2_200  # 2,000 expected; a binomial's 4.7 standard deviations either side
    assert chosen == [k for k in keys if sampled(k, 10)]  # deterministic
    assert all(sampled(k, 1) for k in keys[:100])


@pytest.mark.parametrize("local, quiet, expected", [
    ((2026, 11, 10, 21, 30), "19:00-09:00", (2026, 11, 11, 9, 0)),  # evening: next morning
    ((2026, 11, 11, 6, 15), "19:00-09:00", (2026, 11, 11, 9, 0)),  # early morning: the same morning
    ((2026, 11, 11, 9, 0), "19:00-09:00", (2026, 11, 11, 9, 0)),  # the end itself is not quiet
    ((2026, 11, 11, 18, 59), "19:00-09:00", (2026, 11, 11, 18, 59)),
    ((2026, 11, 11, 12, 30), "12:00-13:00", (2026, 11, 11, 13, 0)),  # a range inside one day
    ((2026, 3, 28, 23, 0), "22:00-07:00", (2026, 3, 29, 7, 0)),  # Berlin springs forward that night: 07:00 CEST
    ((2026, 10, 24, 23, 0), "22:00-07:00", (2026, 10, 25, 7, 0)),  # and back: 07:00 CET
])
def test_quiet_hours_end_in_the_persons_own_time(local, quiet, expected):
    now = datetime(*local, tzinfo=BERLIN).astimezone(timezone.utc)
    assert after_quiet(now, "Europe/Berlin", quiet) == datetime(*expected, tzinfo=BERLIN).astimezone(timezone.utc)


def test_no_quiet_hours_and_an_unknown_zone():
    now = datetime(2026, 11, 10, 23, 0, tzinfo=timezone.utc)
    assert after_quiet(now, "Europe/Berlin", None) == now
    assert after_quiet(now, "Not/AZone", "19:00-09:00") == datetime(2026, 11, 11, 9, 0, tzinfo=timezone.utc)  # UTC's clock


def test_week_start_is_monday_utc():
    assert week_start(datetime(2026, 11, 15, 23, 59, tzinfo=timezone.utc)) == datetime(2026, 11, 9, tzinfo=timezone.utc)
    assert week_start(datetime(2026, 11, 16, 0, 0, tzinfo=timezone.utc)) == datetime(2026, 11, 16, tzinfo=timezone.utc)
