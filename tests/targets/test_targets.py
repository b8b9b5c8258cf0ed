"""Response targets through the real app: warnings and breaches once each (also from a second
instance on the same database), waiting for the reporter pauses the clocks, the reporter's reply
resumes them. SQLite and PostgreSQL."""

import json
from datetime import timedelta

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import select

from bot.policy import Hosts, OfficeHours, OfficeHoursSession, Policy, Targets, Triage
from bot.runtime.app import create_app
from bot.targets import alerts as target_alerts
from bot.targets.jobs import JOB
from storage.models import FrictionChange, FrictionPoint, as_utc
from tests.conftest import make_settings
from tests.fake_slack import TOKEN
from tests.slack_requests import USER, block_action, interactive, slash_command, view_submission

HOST, ON_DUTY, LEAD = "U0HOST0001", "U0DUTY0001", "U0LEAD0001"
TRIAGE = "C0TRIAGE01"


@pytest.fixture
def policy() -> Policy:
    return Policy(
        hosts=Hosts(users=[HOST, ON_DUTY]),
        triage=Triage(channel=TRIAGE),
        office_hours=OfficeHours(sessions=[OfficeHoursSession(weekday="mon", time="10:00", channel=TRIAGE)], rotation=[ON_DUTY]),
        targets=Targets.model_validate({
            "hours": "00:00-24:00", "working_days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
            "escalate_to": {"users": [LEAD], "usergroup": "S0LEADS001"},
            "severities": {"medium": {"first_response": "1h", "resolution": "2h"}},
        }),
    )


async def file(bot, text="the staging deploy hangs on the migration step") -> FrictionPoint:
    await bot.post(*slash_command(text, fake_url=bot.fake.url))
    await bot.drain()
    with bot.db.session() as s:
        return s.exec(select(FrictionPoint).order_by(FrictionPoint.id.desc())).first()


def posts(bot) -> list[dict]:
    return [c.body for c in bot.fake.calls_to("chat.postMessage")]


def alerts(bot) -> list[dict]:
    return [b for b in posts(bot) if ":hourglass" in json.dumps(b) or ":rotating_light" in json.dumps(b)]


async def tick(bot, at) -> None:
    await bot.deps.scheduler.run(JOB, at)
    await bot.drain()


async def test_warning_then_breach_each_once_and_not_again_from_another_instance(bot, policy):
    point = await file(bot)
    filed = as_utc(point.created_at)
    await tick(bot, filed + timedelta(minutes=30))
    assert alerts(bot) == []

    await tick(bot, filed + timedelta(minutes=50))  # past 75 % of the hour
    [warning] = alerts(bot)
    assert warning["channel"] == TRIAGE and warning["thread_ts"] == point.card_ts
    assert f"<@{ON_DUTY}>" in json.dumps(warning) and "first response due in" in warning["text"]

    await tick(bot, filed + timedelta(minutes=55))
    assert len(alerts(bot)) == 1

    await tick(bot, filed + timedelta(minutes=65))
    breach = alerts(bot)[1:]
    where = sorted((b["channel"], "thread_ts" in b) for b in breach)
    assert where == sorted([(TRIAGE, True), (ON_DUTY, False), (LEAD, False)])
    thread = next(b for b in breach if b["channel"] == TRIAGE)
    assert "<!subteam^S0LEADS001>" in json.dumps(thread) and "overdue by" in thread["text"]
    # The card is redrawn at each threshold.
    assert len(bot.fake.calls_to("chat.update")) >= 2

    # A second instance on the same database, after a restart: nothing is sent again.
    settings = make_settings(bot.fake, bot.db)
    _, other = create_app(settings, policy, bot.db, client=AsyncWebClient(token=TOKEN, base_url=settings.slack_api_url))
    await other.scheduler.run(JOB, filed + timedelta(minutes=70))
    while await other.sender.drain_once():
        pass
    assert len(alerts(bot)) == 4  # 1 warning + breach in the thread and 2 DMs; the resolution clock's warning is at 90 min


async def test_an_assignee_is_told_instead_of_the_host_on_duty(bot):
    point = await file(bot)
    with bot.db.session() as s:
        p = s.get(FrictionPoint, point.id)
        p.assignee = HOST
        s.add(p)
        s.commit()
    await tick(bot, as_utc(point.created_at) + timedelta(minutes=50))
    [warning] = alerts(bot)
    assert f"<@{HOST}>" in json.dumps(warning) and ON_DUTY not in json.dumps(warning)


async def test_waiting_for_the_reporter_pauses_the_clocks_until_they_reply(bot):
    point = await file(bot)
    filed = as_utc(point.created_at)
    await bot.post(*slash_command(f"ask FB-{point.id} which runner were you on?", fake_url=bot.fake.url, user=HOST))
    await bot.drain()
    question = next(b for b in posts(bot) if b["channel"] == USER and "question" in b["text"])
    assert "which runner were you on?" in json.dumps(question)
    with bot.db.session() as s:
        assert target_alerts.is_waiting(session=s, point_id=point.id)
        assert s.get(FrictionPoint, point.id).first_response_at is not None  # asking is a response

    # Hours later: the resolution clock is paused, nothing is due.
    await tick(bot, filed + timedelta(hours=5))
    assert alerts(bot) == []

    # A non-host cannot ask; a reporter's reply through the DM's button and modal resumes the clocks.
    await bot.post(*slash_command(f"ask FB-{point.id} anything?", fake_url=bot.fake.url, user="U0STRANGE1"))
    await bot.settle()
    button = next(e for b in question["blocks"] if b["type"] == "actions" for e in b["elements"])
    await bot.post(*interactive(block_action(button["action_id"], button["value"], response_url=bot.fake.url + "/respond")))
    await bot.settle()
    [opened] = bot.fake.calls_to("views.open")
    view = opened.body["view"] if isinstance(opened.body["view"], dict) else json.loads(opened.body["view"])
    values = {"target_reply": {"target_reply_input": {"type": "plain_text_input", "value": "the <!here> arm64 one"}}}
    stranger = await bot.post(*interactive(view_submission(view, values, user="U0STRANGE1")))
    assert "not waiting for an answer from you" in stranger.text
    reply = await bot.post(*interactive(view_submission(view, values)))
    assert reply.status_code == 200 and reply.text in ("", "null")
    await bot.drain()
    with bot.db.session() as s:
        assert not target_alerts.is_waiting(session=s, point_id=point.id)
        actions = [c.action for c in s.exec(select(FrictionChange).where(FrictionChange.friction_point_id == point.id))]
    assert actions[-2:] == ["waiting", "answered"]
    answer = next(b for b in posts(bot) if "answered about" in b["text"])
    assert answer["thread_ts"] == point.card_ts

    # The resolution clock runs again from the answer, less what it had used before the question.
    with bot.db.session() as s:
        changes = list(s.exec(select(FrictionChange).where(FrictionChange.friction_point_id == point.id).order_by(FrictionChange.id)))
        asked, answered = as_utc(changes[-2].at), as_utc(changes[-1].at)
        clocks = target_alerts.clocks_of(session=s, point=s.get(FrictionPoint, point.id), policy=bot.deps.policy, now=answered)
    first, resolution = clocks.states
    assert first.stopped and first.met and resolution.due_at == answered + timedelta(hours=2) - (asked - filed)


async def test_targets_off_until_set(fake_slack, db):
    settings = make_settings(fake_slack, db)
    _, deps = create_app(settings, Policy(), db, client=AsyncWebClient(token=TOKEN, base_url=settings.slack_api_url))
    assert JOB not in deps.scheduler.jobs
