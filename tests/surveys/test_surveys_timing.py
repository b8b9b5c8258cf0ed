"""Survey clocks (issue #13, item 5): every "N days later at the same hour" is counted in local
calendar days of the person's (or the survey's) time zone, through both 2026 DST changes in
Europe/Berlin and America/New_York. Expected times are written as local wall clocks and checked
to the minute."""

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from bot.policy import Hosts, Policy, Survey
from bot.surveys.runs import start_run
from bot.surveys.sealing import Keys
from bot.surveys.timing import closing_time, days_later, delivery_time, reminder_times
from storage.surveys import SurveyRun

UTC = timezone.utc


def local(tz: str, *args) -> datetime:
    """A local wall-clock time in ``tz`` (the first one if it occurs twice), as UTC."""
    return datetime(*args, tzinfo=ZoneInfo(tz)).astimezone(UTC)


# (zone, when the run is opened (local), expected first reminder, last call, close), delivery at 10:00 local,
# a 7-day run with a reminder after one day and a last call. Each run spans one 2026 DST change.
CASES = [
    # Berlin springs forward on Sunday 29 March 2026 (02:00 CET -> 03:00 CEST): issue #13's example.
    ("Europe/Berlin", (2026, 3, 26, 9, 30), (2026, 3, 27, 10, 0), (2026, 4, 1, 10, 0), (2026, 4, 2, 9, 30)),
    # Berlin falls back on Sunday 25 October 2026 (03:00 CEST -> 02:00 CET).
    ("Europe/Berlin", (2026, 10, 22, 9, 30), (2026, 10, 23, 10, 0), (2026, 10, 28, 10, 0), (2026, 10, 29, 9, 30)),
    # New York springs forward on Sunday 8 March 2026 (02:00 EST -> 03:00 EDT).
    ("America/New_York", (2026, 3, 5, 8, 0), (2026, 3, 6, 10, 0), (2026, 3, 11, 10, 0), (2026, 3, 12, 8, 0)),
    # New York falls back on Sunday 1 November 2026 (02:00 EDT -> 01:00 EST).
    ("America/New_York", (2026, 10, 29, 8, 0), (2026, 10, 30, 10, 0), (2026, 11, 4, 10, 0), (2026, 11, 5, 8, 0)),
]


def survey(tz: str) -> Survey:
    return Survey.model_validate({
        "name": "pulse", "questions": [{"id": "nps", "kind": "nps", "text": "Recommend us?"}], "audience": {"channels": ["C0ENG00001"]},
        "timezone": tz, "delivery_hour": 10, "remind_after_days": 1, "remind_before_close": True, "close_after_days": 7,
    })


@pytest.mark.parametrize(("tz", "opened", "first", "last", "closes"), CASES)
def test_reminders_last_call_and_close_keep_the_local_hour_across_dst(tz, opened, first, last, closes):
    start = local(tz, *opened)
    deliver = delivery_time(start, tz, 10)
    assert deliver == local(tz, *opened[:3], 10, 0)
    closes_at = closing_time(start, survey(tz))
    assert closes_at == local(tz, *closes)
    times = reminder_times(deliver, closes_at, remind_after_days=1, remind_before_close=True, tz=tz)
    assert times == [local(tz, *first), local(tz, *last)]


def test_a_time_that_does_not_exist_or_occurs_twice_is_read_one_way():
    # 02:30 on 29 March 2026 does not exist in Berlin: it reads as 03:30 CEST.
    assert days_later(local("Europe/Berlin", 2026, 3, 28, 2, 30), 1, "Europe/Berlin") == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    # 01:30 on 1 November 2026 occurs twice in New York: the first (EDT) one.
    assert days_later(local("America/New_York", 2026, 10, 31, 1, 30), 1, "America/New_York") == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)


@pytest.mark.parametrize(("tz", "opened", "first", "last", "closes"), CASES)
def test_a_run_started_before_a_dst_change_closes_at_its_local_hour(db, tz, opened, first, last, closes):
    policy = Policy(hosts=Hosts(users=["U0HOST0001"]), surveys=[survey(tz)])
    start = local(tz, *opened)
    run = db.transact(start_run, keys=Keys(), survey=policy.surveys[0], policy=policy, occurrence=start, manual=True, now=start)
    with db.session() as s:
        stored = s.exec(select(SurveyRun).where(SurveyRun.id == run.id)).one()
    assert stored.closes_at.replace(tzinfo=UTC) == local(tz, *closes)
    assert stored.closes_at.replace(tzinfo=UTC) - start != timedelta(days=7)  # 23 or 25 hours in one of the days
