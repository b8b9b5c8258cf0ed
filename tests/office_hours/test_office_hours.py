"""Office hours: session times across DST, the host rotation, and the agenda and summary jobs run
through the real app's scheduler and outbox against the fake Slack, on SQLite and PostgreSQL."""

import asyncio
import json
import logging
import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.interval import IntervalTrigger
from sqlmodel import select

from bot.office_hours import service as oh
from bot.office_hours.blocks import COVERED_BLOCK, NEW_BLOCK, OPEN_BLOCK, ROLLING_BLOCK, build_agenda, build_summary
from bot.office_hours.service import job_name
from bot.policy import Hosts, OfficeHours, OfficeHoursSession, Policy, Triage
from bot.runtime.scheduler import Job, Scheduler
from bot.trackers import parse_issue_url
from bot.triage import service as triage
from storage.friction import FrictionDraft, file_friction
from storage.models import FrictionChange, FrictionKind, FrictionPoint, Reporter, ScheduledRun, Source, utcnow
from tests.blockkit import check_message
from tests.slack_requests import interactive, modal_values, slash_command, view_submission

UTC = timezone.utc
HOST_A, HOST_B, HOST_C = "U0HOSTA001", "U0HOSTB001", "U0HOSTC001"
CHANNEL = "C0OFFICE01"
SESSION = OfficeHoursSession(weekday="tue", time="15:00", timezone="Europe/Berlin", minutes=60, channel=CHANNEL)
CONFIG = OfficeHours(sessions=[SESSION], rotation=[HOST_A, HOST_B], agenda_before_minutes=60)
AGENDA, SUMMARY = job_name("agenda", SESSION), job_name("summary", SESSION)


@pytest.fixture
def policy() -> Policy:
    return Policy(office_hours=CONFIG, hosts=Hosts(users=[HOST_A, HOST_B]), triage=Triage(channel="C0TRIAGE01"))


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# ------------------------------------------------------------------ pure: times and rotation


def test_next_occurrences_follow_berlin_local_time_across_both_dst_changes():
    spring = oh.next_occurrences(SESSION, 60, at(2025, 3, 20), count=3)
    assert [o.start for o in spring] == [at(2025, 3, 25, 14), at(2025, 4, 1, 13), at(2025, 4, 8, 13)]
    assert [o.agenda_at for o in spring] == [at(2025, 3, 25, 13), at(2025, 4, 1, 12), at(2025, 4, 8, 12)]
    assert [o.end for o in spring] == [at(2025, 3, 25, 15), at(2025, 4, 1, 14), at(2025, 4, 8, 14)]
    autumn = oh.next_occurrences(SESSION, 60, at(2025, 10, 21, 13), count=2)  # strictly after: skips that day's
    assert [o.start for o in autumn] == [at(2025, 10, 28, 14), at(2025, 11, 4, 14)]
    assert all(o.local_start.hour == 15 for o in spring + autumn)


def test_a_session_in_the_skipped_hour_and_an_agenda_on_the_day_before():
    night = OfficeHoursSession(weekday="sun", time="02:30", timezone="Europe/Berlin", channel=CHANNEL)
    [occ] = oh.next_occurrences(night, 60, at(2025, 3, 29), count=1)
    assert occ.start == at(2025, 3, 30, 1, 30)  # 02:30 does not exist that night: read as CET, i.e. 03:30 CEST
    assert occ.agenda_at == at(2025, 3, 30, 0, 30)
    assert oh.cron_time(OfficeHoursSession(weekday="mon", time="00:30", channel=CHANNEL), -60) == ("sun", 23, 30)


def test_latest_and_previous_agenda_pick_the_right_occurrence():
    occ = oh.latest(SESSION, 60, at(2025, 4, 1, 12, 30), when="agenda_at")
    assert occ.start == at(2025, 4, 1, 13)
    assert oh.latest(SESSION, 60, at(2025, 4, 1, 12, 30), when="end").start == at(2025, 3, 25, 14)
    assert oh.previous_agenda_at(CONFIG, occ) == at(2025, 3, 25, 13)
    with pytest.raises(ValueError):
        oh.occurrence_starting(SESSION, 60, at(2025, 4, 1, 14))  # that is 16:00 in Berlin


def test_the_rotation_gives_each_session_to_the_next_host_in_turn():
    thu = OfficeHoursSession(weekday="thu", time="10:00", timezone="America/New_York", channel="C0OFFICE02")
    config = OfficeHours(sessions=[thu, SESSION], rotation=[HOST_A, HOST_B, HOST_C])
    occs = sorted(
        oh.next_occurrences(SESSION, 60, at(2025, 3, 1), count=5) + oh.next_occurrences(thu, 60, at(2025, 3, 1), count=5),
        key=lambda o: o.start,
    )
    hosts = [oh.host_on_duty(config, o) for o in occs]
    rotation = config.rotation
    assert all(rotation.index(b) == (rotation.index(a) + 1) % 3 for a, b in zip(hosts, hosts[1:], strict=False)), hosts
    assert set(hosts) == set(rotation)
    assert oh.host_on_duty(config, occs[0]) == hosts[0]  # the same occurrence always gets the same host
    assert oh.host_on_duty(OfficeHours(sessions=[SESSION]), occs[0]) is None


# ------------------------------------------------------------------ pure: messages


def fake_point(i: int, text: str = "How do I get a staging database? " * 20) -> FrictionPoint:
    return FrictionPoint(id=i, team_id="T1", filed_by="U1", text=text, source=Source.modal, intake_key=f"k{i}",
                         reporters=[Reporter(user_id="U0DEV00001", team_id="T1")])


def test_messages_stay_within_slack_limits_however_long_the_lists():
    start = at(2025, 4, 1, 13).astimezone(ZoneInfo("Europe/Berlin"))
    many = [fake_point(i, "a & b <c> " * 100) for i in range(1, 121)]
    for message in (build_agenda("FB", start, 60, HOST_A, many, many), build_summary("FB", start, HOST_A, many, many)):
        check_message(message)  # slack_sdk's validators plus the limits they skip
        assert len(message["blocks"]) <= 50 and message["text"]
        assert all(len(b["text"]["text"]) <= 3000 for b in message["blocks"] if b["type"] == "section")
        assert "…and 90 more." in json.dumps(message, ensure_ascii=False)
    empty = build_agenda("FB", start, 60, None, [], [])
    check_message(empty)
    assert "Tue 01 Apr 15:00 CEST" in empty["text"] and "None yet" in json.dumps(empty)


# ------------------------------------------------------------------ through the real app


def refs(message: dict, block_prefix: str) -> list[str]:
    text = " ".join(b["text"]["text"] for b in message["blocks"] if b.get("block_id", "").startswith(block_prefix))
    return re.findall(r"\bFB-\d+\b", text)


def posts_to(bot, channel: str) -> list[dict]:
    return [c.body for c in bot.fake.calls_to("chat.postMessage") if c.body["channel"] == channel]


def file_point(db, text: str, created: datetime, kind: FrictionKind = FrictionKind.question) -> int:
    def go(*, session):
        draft = FrictionDraft(team_id="T0TEAM001", filed_by="U0DEV00002", reporter_id="U0DEV00002", text=text,
                              source=Source.command, intake_key=f"test:{text}", kind=kind)
        point = file_friction(session=session, draft=draft).point
        point.created_at = created
        session.add(point)
        return point.id

    return db.transact(go)


def backdate(db, point_id: int, created: datetime) -> None:
    def go(*, session):
        point = session.get(FrictionPoint, point_id)
        point.created_at = created
        session.add(point)

    db.transact(go)


async def file_by_modal(bot, text: str, created: datetime) -> int:
    """A question filed the way people file it: the slash command's form, kind "office-hours question"."""
    await bot.post(*slash_command("", fake_url=bot.fake.url))
    await bot.settle()
    view = bot.fake.calls_to("views.open")[-1].body["view"]
    await bot.post(*interactive(view_submission(view, modal_values(text, kind="question"))))
    await bot.settle()
    with bot.db.session() as s:
        point = s.exec(select(FrictionPoint).where(FrictionPoint.text == text)).one()
    assert point.kind == FrictionKind.question
    backdate(bot.db, point.id, created)
    return point.id


async def setup_questions(bot) -> tuple[oh.Occurrence, dict[str, int]]:
    """Around the latest agenda time: questions before the previous agenda, since it, and after this one."""
    occ = oh.latest(SESSION, 60, utcnow(), when="agenda_at")
    prev = oh.previous_agenda_at(CONFIG, occ)
    ids = {
        "old": file_point(bot.db, "old question still open", prev - timedelta(days=3)),
        "new": file_point(bot.db, "new question", prev + timedelta(hours=1)),
        "modal": await file_by_modal(bot, "question from the form", occ.agenda_at - timedelta(minutes=5)),
        "late": file_point(bot.db, "question after the agenda went out", occ.agenda_at + timedelta(minutes=1)),
        "feedback": file_point(bot.db, "not a question", prev + timedelta(hours=2), FrictionKind.feedback),
        "answered": file_point(bot.db, "answered before the agenda", prev + timedelta(hours=3)),
        "dupe": file_point(bot.db, "the same new question again", prev + timedelta(hours=4)),
    }
    bot.db.transact(triage.resolve, point_id=ids["answered"], actor=HOST_A, note="see the runbook", prefix="FB")
    bot.db.transact(triage.merge, point_id=ids["dupe"], into_id=ids["new"], actor=HOST_A, prefix="FB")

    def backdate_changes(*, session):  # those two were handled before this agenda went out
        for change in session.exec(select(FrictionChange).where(FrictionChange.action.in_(["resolved", "merged"]))).all():
            change.at = occ.agenda_at - timedelta(hours=1)
            session.add(change)

    bot.db.transact(backdate_changes)
    await bot.drain()
    return occ, ids


def ref(point_id: int) -> str:
    return f"FB-{point_id}"


async def test_the_agenda_lists_the_right_questions_once_and_dms_the_host_on_duty(bot):
    occ, ids = await setup_questions(bot)
    host = oh.host_on_duty(CONFIG, occ)
    assert host in (HOST_A, HOST_B)
    dms_before = len(posts_to(bot, host))

    assert await bot.deps.scheduler.run(AGENDA, occ.start) is True
    await bot.drain()
    [agenda] = posts_to(bot, CHANNEL)
    assert refs(agenda, NEW_BLOCK) == [ref(ids["new"]), ref(ids["modal"])]
    assert refs(agenda, OPEN_BLOCK) == [ref(ids["old"])]
    assert f"<@{host}>" in json.dumps(agenda)
    [dm] = posts_to(bot, host)[dms_before:]
    assert f"<#{CHANNEL}>" in dm["blocks"][0]["text"]["text"]
    assert refs(dm, NEW_BLOCK) == [ref(ids["new"]), ref(ids["modal"])]

    # A second instance firing for the same occurrence, even at the same moment, sends nothing more.
    assert await bot.deps.scheduler.run(AGENDA, occ.start) is False
    await bot.drain()
    assert len(posts_to(bot, CHANNEL)) == 1 and len(posts_to(bot, host)) == dms_before + 1
    earlier = oh.latest(SESSION, 60, occ.agenda_at - timedelta(days=1), when="agenda_at")
    results = await asyncio.gather(*(bot.deps.scheduler.run(AGENDA, earlier.start) for _ in range(3)))
    assert sorted(results) == [False, False, True]
    await bot.drain()
    assert len(posts_to(bot, CHANNEL)) == 2
    with bot.db.session() as s:
        runs = s.exec(select(ScheduledRun).order_by(ScheduledRun.id)).all()
    assert [(r.job, r.occurrence.astimezone(UTC)) for r in runs] == [(AGENDA, occ.start), (AGENDA, earlier.start)]
    assert all(r.finished_at for r in runs)


async def test_the_summary_lists_what_was_covered_and_what_rolls_over(bot):
    occ, ids = await setup_questions(bot)
    bot.db.transact(triage.resolve, point_id=ids["new"], actor=HOST_A, note="use the self-service form", prefix="FB")
    issue = parse_issue_url("https://github.com/acme/platform/issues/12")
    bot.db.transact(triage.link, point_id=ids["old"], actor=HOST_A, issue=issue, prefix="FB")

    assert await bot.deps.scheduler.run(SUMMARY, occ.start) is True
    assert await bot.deps.scheduler.run(SUMMARY, occ.start) is False
    await bot.drain()
    [summary] = posts_to(bot, CHANNEL)
    assert refs(summary, COVERED_BLOCK) == [ref(ids["old"]), ref(ids["new"])]
    assert refs(summary, ROLLING_BLOCK) == [ref(ids["modal"]), ref(ids["late"])]
    text = json.dumps(summary)
    assert "resolved: use the self-service form" in text and "acme/platform#12" in text
    assert summary["text"].endswith("2 covered, 2 rolling over")


async def test_register_schedules_an_agenda_and_a_summary_per_session_at_the_right_times(bot):
    aps = bot.deps.scheduler.aps
    jobs = {job.id: job for job in aps.get_jobs() if job.id != "progress.updates"}  # issue #28's daily job, on by default
    assert set(jobs) == {AGENDA, SUMMARY}
    # The cron triggers run on Berlin's clock: after the spring change, an hour earlier in UTC.
    assert jobs[AGENDA].trigger.get_next_fire_time(None, at(2025, 3, 20)) == at(2025, 3, 25, 13)
    assert jobs[AGENDA].trigger.get_next_fire_time(None, at(2025, 3, 26)) == at(2025, 4, 1, 12)
    assert jobs[SUMMARY].trigger.get_next_fire_time(None, at(2025, 3, 26)) == at(2025, 4, 1, 14)

    aps.start(paused=True)
    try:
        now = utcnow()
        upcoming = oh.next_occurrences(SESSION, 60, now - timedelta(days=1), count=3)
        assert aps.get_job(AGENDA).next_run_time == min(o.agenda_at for o in upcoming if o.agenda_at > now)
        assert aps.get_job(SUMMARY).next_run_time == min(o.end for o in upcoming if o.end > now)

        # Fired as APScheduler fires it: the agenda for the latest occurrence whose time has come, once.
        await aps.get_job(AGENDA).func()
        await aps.get_job(AGENDA).func()
        await bot.drain()
    finally:
        aps.shutdown(wait=False)
    assert len(posts_to(bot, CHANNEL)) == 1
    with bot.db.session() as s:
        [run] = s.exec(select(ScheduledRun)).all()
    assert run.occurrence.astimezone(UTC) == oh.latest(SESSION, 60, utcnow(), when="agenda_at").start


async def test_a_failing_job_logs_and_gives_its_occurrence_back(db, caplog):
    scheduler, calls = Scheduler(), []

    def work(*, session, occurrence):
        calls.append(occurrence)
        if len(calls) == 1:
            raise RuntimeError("boom")

    scheduler.add(Job(name="test.job", db=db, work=work, occurrence_at=lambda now: at(2025, 1, 1)), IntervalTrigger(weeks=1))
    with caplog.at_level(logging.ERROR, logger="bot.runtime.scheduler"):
        await scheduler._fire("test.job")
    assert "scheduled job test.job failed" in caplog.text
    with db.session() as s:
        assert s.exec(select(ScheduledRun)).all() == []  # the claim was rolled back with the work
    assert await scheduler.run("test.job") is True  # so the occurrence can still run
    assert await scheduler.run("test.job") is False
    assert calls == [at(2025, 1, 1)] * 2
