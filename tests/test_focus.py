"""The quarter's focus through the real app: pick (hosts and leads only; not a merged report, not
past the size), publish (one post, one DM per reporter, duplicates' reporters included), the post
kept up to date as an item is fixed, and the end-of-period report once. SQLite and PostgreSQL."""

import json
from datetime import datetime, timezone

import pytest
from sqlmodel import select

from bot.operations import focus, triage
from bot.runtime.config import Focus, Hosts, Policy, Closing, Triage
from handlers.focus import JOB
from storage.focus import FocusItem
from storage.models import FrictionPoint, FrictionTag, Reporter
from tests.slack_requests import USER, block_actions, interactive, slash_command

HOST, LEAD, STRANGER, OTHER = "U0HOST0001", "U0LEAD0001", "U0STRANGE1", "U0OTHER001"
ANNOUNCE, TRIAGE = "C0ANNOUNCE", "C0TRIAGE01"


@pytest.fixture
def policy() -> Policy:
    return Policy(hosts=Hosts(users=[HOST]), triage=Triage(channel=TRIAGE), closing=Closing(announce_channel=ANNOUNCE),
                  focus=Focus(size=2, leads=[LEAD]))


async def file(bot, text: str, user: str) -> int:
    await bot.post(*slash_command(text, fake_url=bot.fake.url, user=user))
    await bot.drain()
    with bot.db.session() as s:
        return s.exec(select(FrictionPoint.id).order_by(FrictionPoint.id.desc())).first()


def responses(bot) -> list[dict]:
    return [c.body for c in bot.fake.calls_to("response_url")]


async def command(bot, text: str, user: str) -> dict:
    await bot.post(*slash_command(text, fake_url=bot.fake.url, user=user))
    await bot.settle()
    return responses(bot)[-1]


async def click(bot, action_id: str, value: str, user: str) -> dict:
    action = {"action_id": action_id, "type": "button", "value": value, "text": {"type": "plain_text", "text": "x"}, "action_ts": "1.2"}
    await bot.post(*interactive(block_actions([action], block_id="focus", user=user, response_url=f"{bot.fake.url}/response_url/x")))
    await bot.settle()
    return responses(bot)[-1]


def buttons(message: dict) -> dict[str, str]:
    return {e["value"]: e["action_id"] for b in message["blocks"] for e in ([b["accessory"]] if "accessory" in b else b.get("elements", []))
            if e.get("type") == "button"}


async def test_a_whole_quarter(bot):
    first = await file(bot, "the deploy pipeline times out on large monorepos", USER)
    dup = await file(bot, "deploys time out on the monorepo again <!channel>", OTHER)
    await file(bot, "docs for the VPN setup are out of date", STRANGER)
    with bot.db.session() as s:
        triage.merge(session=s, point_id=dup, into_id=first, actor=HOST)
        s.commit()

    picker = await command(bot, "focus", HOST)
    offered = buttons(picker)
    assert f"report:{first}" in offered and f"report:{dup}" not in offered  # merged: not a candidate

    assert "Only office-hours hosts" in (await click(bot, "focus_pick", f"report:{first}", STRANGER))["text"]
    assert "merged into" in (await click(bot, "focus_pick", f"report:{dup}", HOST))["text"]
    picked = await click(bot, "focus_pick", f"report:{first}", LEAD)  # a lead may pick
    assert f"report:{first}" in json.dumps(picked) and "Drop" in json.dumps(picked)
    assert "already in" in (await click(bot, "focus_pick", f"report:{first}", HOST))["text"]
    await click(bot, "focus_pick", "area:docs", HOST)
    assert "holds 2 items" in (await click(bot, "focus_pick", "area:ci", HOST))["text"]
    with bot.db.session() as s:
        items = s.exec(select(FocusItem)).all()
        baseline = json.loads(next(i.baseline for i in items if i.subject == f"report:{first}"))
    assert len(items) == 2 and baseline["reporters"] == 2 and baseline["reports_per_week"] > 0

    assert "Only office-hours hosts" in (await command(bot, "focus publish", STRANGER))["text"]
    await command(bot, "focus publish", HOST)
    await bot.drain()
    posts = [c.body for c in bot.fake.calls_to("chat.postMessage")]
    [announcement] = [p for p in posts if p["channel"] == ANNOUNCE]
    assert "We heard you" in announcement["text"] and "raised by 2 people" in json.dumps(announcement)
    dms = [p["channel"] for p in posts if "focus for" in p["text"]]
    assert sorted(dms) == sorted([USER, OTHER, STRANGER])  # the duplicate's reporter too, once each
    assert "<!channel>" not in json.dumps([p for p in posts if p["channel"] in (ANNOUNCE, OTHER)])
    assert "already published" in (await command(bot, "focus publish", HOST))["text"]

    # The report is fixed: the next tick updates the post in place, once for that state.
    with bot.db.session() as s:
        triage.resolve(session=s, point_id=first, actor=HOST, note="bigger runners")
        s.commit()
    now = datetime.now(timezone.utc)
    await bot.deps.scheduler.run(JOB, now)
    await bot.drain()
    await bot.deps.scheduler.run(JOB, now.replace(microsecond=0) if now.microsecond else now.replace(microsecond=1))
    await bot.drain()
    updates = [c.body for c in bot.fake.calls_to("chat.update") if c.body.get("channel") == ANNOUNCE]
    assert len(updates) == 1 and "fixed" in json.dumps(updates[0]) and updates[0]["ts"] == announcement_ts(bot)

    # After the quarter: the report, once, with baseline against now.
    after = datetime(2027, 1, 1, 0, 15, tzinfo=timezone.utc)
    await bot.deps.scheduler.run(JOB, after)
    await bot.deps.scheduler.run(JOB, datetime(2027, 1, 1, 0, 30, tzinfo=timezone.utc))
    await bot.drain()
    reports = [c.body for c in bot.fake.calls_to("chat.postMessage") if c.body["channel"] == ANNOUNCE and "What changed" in c.body["text"]]
    assert len(reports) == 1
    text = json.dumps(reports[0])
    assert "2026-Q4" in text and "not enough answers" in text


def announcement_ts(bot) -> str:
    from storage.focus import FocusPeriod

    with bot.db.session() as s:
        return s.exec(select(FocusPeriod)).one().post_ts


async def test_nothing_picked_posts_nothing(bot):
    assert "Pick at least one" in (await command(bot, "focus publish", HOST))["text"]
    await bot.deps.scheduler.run(JOB, datetime(2027, 1, 1, 0, 15, tzinfo=timezone.utc))
    await bot.drain()
    assert bot.fake.calls_to("chat.postMessage") == []


def test_period_is_the_local_calendar_quarter():
    key, start, end = focus.period_for(datetime(2026, 12, 31, 23, 30, tzinfo=timezone.utc), "Europe/Berlin")
    assert key == "2027-Q1" and start.isoformat() == "2027-01-01T00:00:00+01:00" and end.isoformat() == "2027-04-01T00:00:00+02:00"
    assert focus.period_for(datetime(2026, 12, 31, 23, 30, tzinfo=timezone.utc), "America/New_York")[0] == "2026-Q4"
