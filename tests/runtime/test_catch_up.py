"""A restart across a due time: the scheduler's catch-up runs each job's missed occurrence once
(also with two instances restarting together), skips with a reason what is past its use, and runs
nothing for times before a job first started. On SQLite and PostgreSQL."""

import asyncio
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import col, select

from bot.insight.digest import JOB as DIGEST
from bot.office_hours.service import job_name
from bot.policy import Insight, OfficeHours, OfficeHoursSession, Policy, Survey, Triage
from bot.runtime.app import create_app
from bot.runtime.scheduler import latest_fire
from bot.surveys.runs import job_name as survey_job
from storage.models import OutboxMessage, ScheduledRun
from storage.surveys import SurveyRun
from tests.conftest import make_settings
from tests.fake_slack import TOKEN
from tests.waiting import until

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
DIGEST_CHANNEL, OFFICE = "C0DIGEST01", "C0OFFICE01"
SESSION = OfficeHoursSession(weekday="mon", time="18:00", timezone="Europe/Berlin", minutes=60, channel=OFFICE)
AGENDA, SUMMARY = job_name("agenda", SESSION), job_name("summary", SESSION)
# A yearly pulse survey at 17:53 on 23 November, Berlin time: the same gap as the others.
PULSE = Survey.model_validate({
    "name": "pulse", "questions": [{"id": "nps", "kind": "nps", "text": "How likely are you to recommend us?"}],
    "audience": {"channels": ["C0ENG00001"]}, "schedule": "53 17 23 11 *", "timezone": "Europe/Berlin",
    "results_channel": DIGEST_CHANNEL,
})
DUE = datetime(2026, 11, 23, 17, 53, tzinfo=BERLIN)  # a Monday: digest and agenda (7 minutes before 18:00) due
DOWN, UP = DUE - timedelta(minutes=3), DUE + timedelta(minutes=3)  # the bot is down 17:50-17:56


@pytest.fixture
def policy() -> Policy:
    return Policy(
        insight=Insight(digest_channel=DIGEST_CHANNEL, digest_weekday="mon", digest_time="17:53", timezone="Europe/Berlin"),
        office_hours=OfficeHours(sessions=[SESSION], rotation=["U0HOST0001"], agenda_before_minutes=7),
        triage=Triage(channel="C0TRIAGE01"),
        surveys=[PULSE],
    )


def instance(fake_slack, db, policy, now: datetime):
    """One bot process as it starts at ``now``."""
    settings = make_settings(fake_slack, db)
    _app, deps = create_app(settings, policy, db, client=AsyncWebClient(token=TOKEN, base_url=settings.slack_api_url))
    deps.scheduler.clock = lambda: now.astimezone(UTC)
    return deps


def ran_before(db, deps, before: datetime) -> None:
    """The bot ran until ``before``: each job's occurrences up to then are claimed."""
    with db.session() as s, s.begin():
        for name, trigger in deps.scheduler.triggers.items():
            fired = latest_fire(trigger, before.astimezone(UTC))
            s.add(ScheduledRun(job=name, occurrence=deps.scheduler.jobs[name].occurrence_at(fired), finished_at=fired))


def queued(db, prefix: str) -> list[OutboxMessage]:
    with db.session() as s:
        return list(s.exec(select(OutboxMessage).where(col(OutboxMessage.dedupe_key).startswith(prefix))).all())


def claims(db, job: str) -> list[datetime]:
    with db.session() as s:
        return sorted(r.occurrence.astimezone(UTC) for r in s.exec(select(ScheduledRun).where(ScheduledRun.job == job)))


async def test_a_restart_across_the_due_time_runs_each_missed_job_once(fake_slack, db, policy):
    deps = instance(fake_slack, db, policy, UP)
    ran_before(db, deps, DOWN)

    done = await deps.scheduler.catch_up()
    assert done[DIGEST] == "ran" and done[AGENDA] == "ran" and done[survey_job(PULSE)] == "ran"
    assert done[SUMMARY] == "claimed"  # last week's summary ran before the bot went down
    assert DUE.astimezone(UTC) in claims(db, DIGEST)
    assert datetime(2026, 11, 23, 17, tzinfo=UTC) in claims(db, AGENDA)  # the occurrence is the session's start
    assert queued(db, DIGEST) and len(queued(db, "office_hours.agenda")) >= 1
    with db.session() as s:
        [run] = s.exec(select(SurveyRun)).all()  # this year's pulse, not next year's
    assert run.survey == PULSE.name

    # The next tick, and another process starting later: nothing runs again.
    assert await deps.scheduler.catch_up() == {}
    again = await instance(fake_slack, db, policy, UP + timedelta(minutes=1)).scheduler.catch_up()
    assert set(again.values()) == {"claimed"}


async def test_two_instances_restarting_together_run_each_occurrence_once(fake_slack, db, policy):
    first, second = instance(fake_slack, db, policy, UP), instance(fake_slack, db, policy, UP)
    ran_before(db, first, DOWN)
    a, b = await asyncio.gather(first.scheduler.catch_up(), second.scheduler.catch_up())
    for job in (DIGEST, AGENDA, survey_job(PULSE)):
        assert sorted([a[job], b[job]]) == ["claimed", "ran"], (job, a, b)
        assert len(claims(db, job)) == 2  # last week's and this one, once
    with db.session() as s:
        assert len(s.exec(select(SurveyRun)).all()) == 1


async def test_an_agenda_found_after_its_session_ended_is_skipped_with_the_reason(fake_slack, db, policy, caplog):
    late = datetime(2026, 11, 23, 19, 30, tzinfo=BERLIN)  # up again after the 18:00-19:00 session
    deps = instance(fake_slack, db, policy, late)
    ran_before(db, deps, DOWN)
    outcomes = []
    deps.scheduler.observer = lambda job, outcome: outcomes.append((job, outcome))
    done = await deps.scheduler.catch_up()
    assert done[AGENDA].startswith("missed: its session ended at 2026-11-23T19:00:00+01:00")
    assert (AGENDA, "missed") in outcomes and "skipped: its session ended" in caplog.text
    assert done[DIGEST] == "ran"  # the week's digest is still the week's digest
    assert done[SUMMARY] == "ran"  # the summary was due at 19:00, also while the bot was down
    assert queued(db, "office_hours.agenda") == []
    assert datetime(2026, 11, 23, 17, tzinfo=UTC) not in claims(db, AGENDA)


async def test_a_first_start_runs_nothing_from_before_it(fake_slack, db, policy):
    deps = instance(fake_slack, db, policy, UP)
    done = await deps.scheduler.catch_up()
    assert set(done.values()) == {"first start"}
    with db.session() as s:
        assert s.exec(select(OutboxMessage)).all() == [] and s.exec(select(SurveyRun)).all() == []
    # Once a job has run anywhere, a later restart catches up as usual.
    later = instance(fake_slack, db, policy, UP + timedelta(days=7))
    assert (await later.scheduler.catch_up())[DIGEST] == "ran"


async def test_start_catches_up_at_once(fake_slack, db, policy):
    deps = instance(fake_slack, db, policy, UP)
    ran_before(db, deps, DOWN)
    deps.scheduler.start()
    try:
        await until(lambda: DUE.astimezone(UTC) in claims(db, DIGEST), what="the missed digest claimed", interval=0.1)
    finally:
        deps.scheduler.stop()
    assert DUE.astimezone(UTC) in claims(db, DIGEST)


def test_latest_fire_finds_frequent_weekly_yearly_and_interval_triggers_through_dst():
    now = datetime(2026, 11, 23, 16, 56, tzinfo=UTC)
    assert latest_fire(CronTrigger.from_crontab("53 17 23 11 *", timezone="Europe/Berlin"), now) == datetime(2026, 11, 23, 16, 53, tzinfo=UTC)
    assert latest_fire(CronTrigger.from_crontab("53 17 24 11 *", timezone="Europe/Berlin"), now) == datetime(2025, 11, 24, 16, 53, tzinfo=UTC)
    assert latest_fire(CronTrigger.from_crontab("* * * * *", timezone="UTC"), now) == now
    assert latest_fire(IntervalTrigger(minutes=5, start_date=datetime(1970, 1, 1, tzinfo=UTC)), now) == datetime(2026, 11, 23, 16, 55, tzinfo=UTC)
    # Across both 2026 changes: 09:00 in New York is 14:00 UTC before 8 March and 13:00 after it.
    ny = CronTrigger(day_of_week="mon", hour=9, timezone="America/New_York")
    assert latest_fire(ny, datetime(2026, 3, 10, tzinfo=UTC)) == datetime(2026, 3, 9, 13, tzinfo=UTC)
    assert latest_fire(ny, datetime(2026, 3, 8, tzinfo=UTC)) == datetime(2026, 3, 2, 14, tzinfo=UTC)
    assert latest_fire(ny, datetime(2026, 11, 3, tzinfo=UTC)) == datetime(2026, 11, 2, 14, tzinfo=UTC)
    assert latest_fire(CronTrigger.from_crontab("0 0 1 1 *"), datetime(2026, 1, 1, tzinfo=UTC) - timedelta(days=800)) is not None


# Both 2026 changes in both zones: the EU on 29 March and 25 October, the US on 8 March and 1 November
# (tz database, https://www.timeanddate.com/time/change/). Monday 09:00 stays 09:00 on the local clock.
CHANGES = [("Europe/Berlin", datetime(2026, 3, 29, tzinfo=UTC), datetime(2026, 10, 25, tzinfo=UTC)),
           ("America/New_York", datetime(2026, 3, 8, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))]


@pytest.mark.parametrize("zone,spring,autumn", CHANGES)
def test_sessions_digests_and_catch_up_keep_local_time_through_both_2026_changes(zone, spring, autumn):
    from bot.insight.jobs import digest_trigger, latest_occurrence
    from bot.office_hours import service as oh

    session = OfficeHoursSession(weekday="mon", time="09:00", timezone=zone, minutes=60, channel=OFFICE)
    digest = digest_trigger(Insight(digest_channel=DIGEST_CHANNEL, digest_weekday="mon", digest_time="09:00", timezone=zone))
    for change in (spring, autumn):
        occs = oh.next_occurrences(session, 90, change - timedelta(days=8), count=2)  # the Mondays either side
        assert [o.local_start.strftime("%a %H:%M") for o in occs] == ["Mon 09:00", "Mon 09:00"]
        assert [o.agenda_at.astimezone(ZoneInfo(zone)).strftime("%H:%M") for o in occs] == ["07:30", "07:30"]
        assert [o.end.astimezone(ZoneInfo(zone)).strftime("%H:%M") for o in occs] == ["10:00", "10:00"]
        shift = occs[1].start - occs[0].start
        assert shift == timedelta(days=7) + (timedelta(hours=-1) if change == spring else timedelta(hours=1))
        for occ in occs:
            fired = latest_fire(digest, occ.start + timedelta(minutes=3))  # a restart three minutes after it
            assert fired == occ.start and latest_occurrence(digest, occ.start + timedelta(minutes=3)) == occ.start
            assert fired.astimezone(ZoneInfo(zone)).hour == 9


async def test_a_firing_this_recent_is_left_to_apscheduler(fake_slack, db, policy):
    deps = instance(fake_slack, db, policy, DUE + timedelta(seconds=10))
    ran_before(db, deps, DOWN)
    done = await deps.scheduler.catch_up()
    assert DIGEST not in done and AGENDA not in done  # APScheduler's own firing claims them
    deps.scheduler.clock = lambda: (DUE + timedelta(seconds=70)).astimezone(UTC)  # its next tick: not fired after all
    assert (await deps.scheduler.catch_up())[DIGEST] == "ran"


async def test_each_instance_jobs_are_listed_run_every_time_and_claim_nothing(db):
    """surveys.tick and usage.tick go through Scheduler.add like every job (issue #24), but claim no
    occurrence: each run runs, nothing lands in scheduled_run, and catch-up leaves them alone."""
    from bot.runtime.scheduler import Job, Scheduler, interval_slot, interval_trigger

    runs: list[int] = []

    async def tick() -> None:
        runs.append(len(runs))

    scheduler = Scheduler(clock=lambda: UP.astimezone(UTC) + timedelta(seconds=45))  # past CATCH_UP_GRACE of a firing
    scheduler.add(Job(name="t.tick", db=db, work=None, occurrence_at=interval_slot(1), each_instance=tick),
                  interval_trigger(1), misfire_grace_seconds=None, at_start=True)
    assert "t.tick" in scheduler.jobs and scheduler.aps.get_job("t.tick").misfire_grace_time is None
    assert await scheduler.run("t.tick") and await scheduler.run("t.tick")
    assert runs == [0, 1]
    assert await scheduler.catch_up() == {}
    assert await db.run(lambda session: session.exec(select(ScheduledRun)).all()) == []
    with pytest.raises(ValueError, match="either work or each_instance"):
        Job(name="both", db=db, work=lambda **_: None, occurrence_at=interval_slot(1), each_instance=tick)
