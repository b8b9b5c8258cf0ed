"""The start-up passes run at start (issue #26, item 13): the surveys tick and the scheduler's
catch-up are due "now" when they are registered, but they fire only once the scheduler starts,
which on a loaded host is seconds later. APScheduler 3 skips a firing later than its
``misfire_grace_time`` (1 s by default: "Run time of job ... was missed by 0:00:01"), so after a
restart the surveys resumed only at the next five-minute tick.

Here the start-up is "frozen" for five seconds between building the app and starting its
scheduler (the clock moved on with time-machine), and the jobs' own outcome events say whether
they ran or were missed."""

from datetime import datetime, timedelta, timezone

import time_machine
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
from slack_sdk.web.async_client import AsyncWebClient

from bot.policy import Hosts, Policy, Survey
from bot.runtime.app import create_app
from bot.runtime.scheduler import CATCH_UP_JOB
from tests.conftest import make_settings
from tests.fake_slack import TOKEN
from tests.waiting import until


def survey_policy() -> Policy:
    survey = Survey.model_validate({
        "name": "pulse", "questions": [{"id": "nps", "kind": "nps", "text": "Recommend us?"}],
        "audience": {"channels": ["C0ENG00001"]}, "schedule": "0 10 * * 1",
    })
    return Policy(hosts=Hosts(users=["U0HOST0001"]), surveys=[survey])


async def test_the_start_up_ticks_run_however_late_the_scheduler_starts(fake_slack, db):
    settings = make_settings(fake_slack, db)
    _app, deps = create_app(settings, survey_policy(), db, client=AsyncWebClient(token=TOKEN, base_url=settings.slack_api_url))
    outcomes: dict[str, str] = {}

    def seen(event) -> None:
        kind = {EVENT_JOB_EXECUTED: "ran", EVENT_JOB_MISSED: "missed", EVENT_JOB_ERROR: "failed"}[event.code]
        outcomes.setdefault(event.job_id, kind)

    deps.scheduler.aps.add_listener(seen, EVENT_JOB_EXECUTED | EVENT_JOB_MISSED | EVENT_JOB_ERROR)
    # Five seconds of start-up (migrations, chart process, a busy host) between registering and starting.
    with time_machine.travel(datetime.now(timezone.utc) + timedelta(seconds=5), tick=True):
        deps.scheduler.start()
        try:
            await until(lambda: {"surveys.tick", CATCH_UP_JOB} <= outcomes.keys(), what="both start-up ticks to run or miss")
        finally:
            deps.scheduler.stop()
            await deps.sender.stop()
    assert outcomes.get("surveys.tick") == "ran", outcomes
    assert outcomes.get(CATCH_UP_JOB) == "ran", outcomes
