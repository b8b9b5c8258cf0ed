"""Issue #30: response targets at their edges, through the real app with a frozen clock, on SQLite
and PostgreSQL. What belongs to a cycle of a report (a pause, a question waiting for the reporter,
its alerts) ends with that cycle; a merged duplicate counts not at all in compliance, however long
after it was measured; alerts and the card follow the target in force after a severity change;
two hosts asking at once on two instances: one wins, the other is told."""

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import select

from bot.insight import service as insight
from bot.policy import Hosts, Policy, Targets, Triage
from bot.runtime.app import create_app, create_web_app
from bot.targets import alerts as target_alerts
from bot.targets import compliance
from bot.targets.jobs import JOB
from storage.models import FrictionPoint
from tests.conftest import Bot, make_settings
from tests.fake_slack import TOKEN
from tests.slack_requests import USER, block_actions, element_action, event_callback, interactive, slash_command
from tests.targets.test_targets_surfaces import due_block, message
from tests.triage.test_triage import element, history, load, submit_modal

UTC = timezone.utc
HOST, HOST2, OTHER = "U0HOST0001", "U0HOST0002", "U0OTHER001"
TRIAGE = "C0TRIAGE01"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday; the team works round the clock


@pytest.fixture
def policy() -> Policy:
    return Policy(hosts=Hosts(users=[HOST, HOST2]), triage=Triage(channel=TRIAGE), targets=Targets.model_validate({
        "hours": "00:00-24:00", "working_days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "severities": {"medium": {"first_response": "1h", "resolution": "6h"}, "blocker": {"first_response": "10m", "resolution": "1h"}},
    }))


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


async def file(bot, text: str, user: str = USER) -> int:
    await bot.post(*slash_command(text, fake_url=bot.fake.url, user=user))
    await bot.drain()
    with bot.db.session() as s:
        return s.exec(select(FrictionPoint.id).order_by(FrictionPoint.id.desc())).first()


async def command(bot, text: str, user: str = HOST) -> str:
    await bot.post(*slash_command(text, fake_url=bot.fake.url, user=user))
    await bot.drain()
    return bot.fake.calls_to("response_url")[-1].body.get("text", "")


async def tick(bot, clock, at: datetime) -> None:
    clock.move_to(at)
    await bot.deps.scheduler.run(JOB, at)
    await bot.drain()


def card(bot, point_id: int) -> dict:
    """The point's card as Slack last drew it (its post or latest update; not its thread)."""
    ts = load(bot.db, point_id).card_ts
    drawn = [c.body for c in bot.fake.calls if (c.method == "chat.update" and c.body.get("ts") == ts)
             or (c.method == "chat.postMessage" and c.body.get("channel") == TRIAGE and not c.body.get("thread_ts")
                 and f"FB-{point_id}" in json.dumps(c.body))]
    return drawn[-1]


def due_line(bot, point_id: int) -> str:
    return due_block(card(bot, point_id)) or ""


async def click(bot, point_id: int, action_id: str, user: str = HOST, **chosen) -> None:
    """A host's click on the card's button or menu (``tests.triage.test_triage.click``, on this card)."""
    el, block_id = element(card(bot, point_id), action_id)
    resp = await bot.post(*interactive(block_actions([element_action(el, **chosen)], block_id=block_id, user=user,
                                                     response_url=f"{bot.fake.url}/response_url/{action_id}-{user}", channel=TRIAGE)))
    assert resp.status_code == 200
    await bot.drain()


def alerts(bot, point_id: int) -> list[str]:
    """The warnings and breaches in the card's thread, as their one-line text."""
    return [c.body["text"] for c in bot.fake.calls_to("chat.postMessage")
            if c.body["channel"] == TRIAGE and c.body.get("thread_ts") and c.body["text"].startswith(f"FB-{point_id}:")]


async def test_a_question_and_its_pause_end_with_the_cycle(bot, clock):
    point_id = await file(bot, "the staging deploy hangs on the migration step")
    assert (await command(bot, f"ask FB-{point_id} which runner were you on?")).startswith("Asked the reporter")
    clock.move_to(T0 + timedelta(minutes=10))
    assert await command(bot, f"resolve FB-{point_id} restarted the runner") == f"Resolved FB-{point_id}."

    # Reopened the next day: a fresh cycle, running, nothing waiting.
    reopened = T0 + timedelta(days=1)
    clock.move_to(reopened)
    await click(bot, point_id, "triage_reopen")
    assert load(bot.db, point_id).status != "resolved"
    line = due_line(bot, point_id)
    assert "paused" not in line and "resolution due in 6 h" in line
    await tick(bot, clock, reopened + timedelta(hours=4, minutes=35))  # past 75 % of 6 h
    await tick(bot, clock, reopened + timedelta(hours=6, minutes=5))
    assert [a.split(":")[1].strip().split(" ")[:2] for a in alerts(bot, point_id)] == [["resolution", "due"], ["resolution", "overdue"]]
    assert "overdue by 5 m" in due_line(bot, point_id)
    # The host can ask again; the answer resumes; a resolve ends that question too.
    assert (await command(bot, f"ask FB-{point_id} still on arm64?")).startswith("Asked the reporter")
    clock.move_to(reopened + timedelta(hours=7))
    assert await command(bot, f"resolve FB-{point_id}") == f"Resolved FB-{point_id}."

    # A week after the resolve the reporter writes to the bot about something else: a new report.
    clock.move_to(reopened + timedelta(days=7))
    await bot.post(*event_callback(message("D0DM000001", "the VPN drops every night since Monday", channel_type="im")))
    await bot.drain()
    with bot.db.session() as s:
        texts = [p.text for p in s.exec(select(FrictionPoint).order_by(FrictionPoint.id))]
        assert not target_alerts.is_waiting(session=s, point_id=point_id)
    assert texts[-1] == "the VPN drops every night since Monday" and len(texts) == 2
    dm = [c.body["text"] for c in bot.fake.calls_to("chat.postMessage") if c.body["channel"] == "D0DM000001"]
    assert len(dm) == 1 and "went to the platform team" not in dm[0]
    assert "answered" not in [h.action for h in history(bot.db, point_id)]


async def test_a_merge_ends_the_duplicates_question(bot, clock):
    older = await file(bot, "the staging database is down again")
    newer = await file(bot, "staging db unreachable since 9am", user=OTHER)
    await command(bot, f"ask FB-{newer} since when exactly?")
    await click(bot, newer, "triage_merge")
    await submit_modal(bot, HOST, f"FB-{older}")
    with bot.db.session() as s:
        assert not target_alerts.is_waiting(session=s, point_id=newer)
    # Their next DM is a new report, not an answer about a report that no longer waits.
    await bot.post(*event_callback(message("D0DM000002", "the wiki search is broken", user=OTHER, channel_type="im")))
    await bot.drain()
    with bot.db.session() as s:
        assert s.exec(select(FrictionPoint).order_by(FrictionPoint.id.desc())).first().text == "the wiki search is broken"


async def test_alerts_and_the_card_follow_the_target_in_force(bot, clock):
    point_id = await file(bot, "prod deploys fail for every team")
    clock.move_to(T0 + timedelta(minutes=5))
    await click(bot, point_id, "triage_severity", selected_option={"text": {"type": "plain_text", "text": "Blocker"}, "value": "blocker"})
    await tick(bot, clock, T0 + timedelta(minutes=50))
    await tick(bot, clock, T0 + timedelta(minutes=65))
    assert [a.split(":")[1].split()[:2] for a in alerts(bot, point_id)] == [["resolution", "due"], ["resolution", "overdue"]]

    clock.move_to(T0 + timedelta(minutes=70))  # lowered back to medium: 6 h from filing
    await click(bot, point_id, "triage_severity", selected_option={"text": {"type": "plain_text", "text": "Medium"}, "value": "medium"})
    assert "resolution due in 4 h 50 m" in due_line(bot, point_id)
    await tick(bot, clock, T0 + timedelta(hours=4, minutes=35))
    await tick(bot, clock, T0 + timedelta(hours=6, minutes=5))
    await tick(bot, clock, T0 + timedelta(hours=6, minutes=10))  # said once
    said = alerts(bot, point_id)
    assert len(said) == 4 and "resolution due in 1 h 25 m" in said[2] and "resolution overdue by 5 m" in said[3]
    assert "resolution overdue by 5 m" in due_line(bot, point_id)
    # Back to blocker: that target was alerted on already, nothing is said twice.
    await click(bot, point_id, "triage_severity", selected_option={"text": {"type": "plain_text", "text": "Blocker"}, "value": "blocker"})
    await tick(bot, clock, T0 + timedelta(hours=6, minutes=15))
    assert len(alerts(bot, point_id)) == 4


async def test_a_duplicate_merged_after_it_was_measured_counts_not_at_all(bot, clock):
    kept = await file(bot, "the staging database is down again")
    dup = await file(bot, "staging db unreachable since 9am", user=OTHER)
    clock.move_to(T0 + timedelta(minutes=20))
    for point_id in (kept, dup):  # both answered in time: their first responses are measured
        await click(bot, point_id, "triage_assign_me")
    await tick(bot, clock, T0 + timedelta(hours=6, minutes=30))  # both resolution clocks breached: recorded
    with bot.db.session() as s:
        before = compliance.compliance(session=s, policy=bot.deps.policy, days=7, now=T0 + timedelta(hours=7))
    assert (before.first_response.measured, before.breaches) == (2, 2)

    clock.move_to(T0 + timedelta(hours=7))
    await click(bot, dup, "triage_merge")
    await submit_modal(bot, HOST, f"FB-{kept}")
    await tick(bot, clock, T0 + timedelta(hours=7, minutes=5))
    top = await command(bot, "top 7")
    shown = json.dumps([c.body for c in bot.fake.calls_to("response_url")][-1])
    assert "of 1" in shown and "of 2" not in shown and "Breaches: 1*" in shown, top
    with bot.db.session() as s:
        after = compliance.compliance(session=s, policy=bot.deps.policy, days=7, now=T0 + timedelta(hours=8))
        loop = insight.loop_numbers(session=s, window=insight.Window(T0 - timedelta(days=1), T0 + timedelta(days=1)))
    assert (after.first_response.measured, after.breaches, sum(after.breaches_by_area.values())) == (1, 1, 1)
    assert loop.median_first_response == timedelta(minutes=20)  # the merge is no response to the duplicate


async def test_two_hosts_ask_at_once_on_two_instances(bot, clock):
    """Two app instances on one database: one question waits, the other host is told it already does."""
    point_id = await file(bot, "the staging deploy hangs on the migration step")
    told_before = len(bot.fake.calls_to("response_url"))
    settings = make_settings(bot.fake, bot.db)
    app, deps = create_app(settings, bot.deps.policy, bot.db, client=AsyncWebClient(token=TOKEN, base_url=settings.slack_api_url))
    import httpx

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_web_app(app, deps, run_background=False)),
                                 base_url="http://testserver") as http:
        other = Bot(deps=deps, http=http, fake=bot.fake, db=bot.db)
        await asyncio.gather(other.post(*slash_command(f"ask FB-{point_id} which runner?", fake_url=bot.fake.url, user=HOST2)),
                             bot.post(*slash_command(f"ask FB-{point_id} which region?", fake_url=bot.fake.url, user=HOST)))
        await other.settle()
        await bot.drain()
    said = sorted(c.body["text"] for c in bot.fake.calls_to("response_url")[told_before:])
    assert said == [f"Asked the reporter of FB-{point_id}; its response-target clocks are paused until they answer.",
                    "That report is already waiting for the reporter."]
    asked = [h for h in history(bot.db, point_id) if h.action == "waiting"]
    questions = [c.body for c in bot.fake.calls_to("chat.postMessage") if c.body["channel"] == USER and "question" in c.body["text"]]
    assert len(asked) == 1 and len(questions) == 1


async def test_an_alert_sent_before_the_upgrade_is_not_sent_again(bot, clock):
    """Before issue #30 an alert's key did not name the target in force; one sent then, for the
    target still in force, is not sent again after the upgrade (a restart says nothing twice)."""
    from storage import outbox

    point_id = await file(bot, "the staging deploy hangs on the migration step")
    clock.move_to(T0 + timedelta(minutes=50))
    with bot.db.session() as s, s.begin():  # what the earlier version queued at its warning
        outbox.enqueue(session=s, dedupe_key=f"target:{point_id}:first_response:0:warning:thread", method="chat.postMessage",
                       payload={"channel": TRIAGE, "text": "earlier"}, friction_point_id=point_id)
    await bot.drain()
    await tick(bot, clock, T0 + timedelta(minutes=50))
    assert alerts(bot, point_id) == []
    await tick(bot, clock, T0 + timedelta(minutes=65))  # the breach was never sent: it is now
    assert [a.split(":")[1].split()[:2] for a in alerts(bot, point_id)] == [["first", "response"]]
    assert "overdue" in alerts(bot, point_id)[0]
