"""A survey's cron schedule fires on the weekday cron means (bot.cron): APScheduler 3's
``from_crontab`` took ``0 10 * * 1`` ("Mondays at 10") as Tuesdays, its weekday 0 being Monday."""

from datetime import datetime, timezone

import pytest

from bot import cron
from bot.policy import Survey
from bot.surveys.timing import trigger_for

MONDAY = datetime(2026, 12, 7, 0, 0, tzinfo=timezone.utc)  # a Monday


def fires(expression: str, n: int = 7) -> list[str]:
    """The weekday names of the next ``n`` firings after MONDAY 00:00 UTC."""
    trigger, at, out = cron.trigger(expression, timezone="UTC"), MONDAY, []
    for _ in range(n):
        at = trigger.get_next_fire_time(None, at)
        out.append(at.strftime("%a"))
        at = at.replace(second=1)
    return out


@pytest.mark.parametrize("expression, days", [
    ("0 10 * * 1", ["Mon"]),
    ("0 10 * * 0", ["Sun"]),
    ("0 10 * * 7", ["Sun"]),
    ("0 10 * * 1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
    ("0 10 * * 0-2", ["Sun", "Mon", "Tue"]),
    ("0 10 * * 5-7", ["Fri", "Sat", "Sun"]),
    ("0 10 * * 1,3", ["Mon", "Wed"]),
    ("0 10 * * */2", ["Sun", "Tue", "Thu", "Sat"]),
    ("0 10 * * 1-5/2", ["Mon", "Wed", "Fri"]),
    ("0 10 * * mon-fri", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
    ("0 10 * * *", ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]),
])
def test_weekdays_are_read_the_cron_way(expression, days):
    assert set(fires(expression, 14)) == set(days)


def test_mondays_at_ten_fire_on_monday_at_ten():
    assert cron.trigger("0 10 * * 1", timezone="UTC").get_next_fire_time(None, MONDAY) == MONDAY.replace(hour=10)
    survey = Survey.model_validate({
        "name": "pulse", "questions": [{"id": "nps", "kind": "nps", "text": "Recommend us?"}],
        "audience": {"channels": ["C0ENG00001"]}, "schedule": "0 10 * * 1", "timezone": "UTC",
    })
    assert trigger_for(survey).get_next_fire_time(None, MONDAY) == MONDAY.replace(hour=10)


@pytest.mark.parametrize("expression", ["0 10 * * 8", "0 10 * * 5-2", "0 10 * * 1/0", "0 10 * *"])
def test_a_wrong_weekday_or_field_count_is_refused(expression):
    with pytest.raises(ValueError):
        cron.trigger(expression)
