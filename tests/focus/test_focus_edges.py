"""Issue #30: the quarter's focus at its edges, through the real app with a frozen clock, on SQLite
and PostgreSQL. The quarter ends at the team's local midnight whatever the zone; a report merged
after it was picked is followed to the report it joined (fixed there, its reporters counted across
the merge, each person once); a person behind two items hears once; two hosts picking at the same
moment on two instances cannot overfill the focus."""

import asyncio
import json
import threading
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import httpx
import pytest
import time_machine
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import text
from sqlmodel import select

from bot.focus import data as focus_data
from bot.focus import service as focus
from bot.policy import Closing, Focus, Hosts, Insight, Policy, Triage
from bot.runtime.app import create_app, create_web_app
from storage.focus import FocusItem, FocusPeriod
from tests import tracker_requests as tr
from tests.conftest import Bot, make_settings
from tests.fake_slack import TOKEN
from tests.focus.test_focus import ANNOUNCE, HOST, LEAD, OTHER, TRIAGE, announced, command, file, rows, tick
from tests.slack_requests import USER, block_actions, interactive
from tests.targets.test_targets_edges import click as card_click
from tests.targets.test_targets_edges import submit_modal
from tests.waiting import WAIT_SECONDS

UTC = timezone.utc
HOST2 = "U0HOST0002"


@pytest.fixture
def zone() -> str:
    return "UTC"


@pytest.fixture
def policy(zone) -> Policy:
    return Policy(hosts=Hosts(users=[HOST, HOST2]), triage=Triage(channel=TRIAGE), closing=Closing(announce_channel=ANNOUNCE),
                  focus=Focus(size=3, leads=[LEAD]), insight=Insight(timezone=zone))


@pytest.fixture
def settings_overrides() -> dict:
    return tr.SETTINGS


@pytest.fixture
def clock():
    with time_machine.travel(datetime(2026, 5, 11, 16, tzinfo=UTC), tick=False) as traveller:
        yield traveller


async def press(bot, subject: str, user: str = HOST, http=None) -> None:
    """A host's Pick button, acked (``http``: another instance's server)."""
    action = {"action_id": "focus_pick", "type": "button", "value": subject, "text": {"type": "plain_text", "text": "x"}, "action_ts": "1.2"}
    body, headers = interactive(block_actions([action], block_id="focus", user=user, response_url=f"{bot.fake.url}/response_url/pick"))
    assert (await (http or bot.http).post("/slack/events", content=body.encode("utf-8"), headers=headers)).status_code == 200


async def pick(bot, subject: str, user: str = HOST) -> dict:
    await press(bot, subject, user)
    await bot.settle()
    return bot.fake.calls_to("response_url")[-1].body


def reports_posted(bot) -> list[dict]:
    return [p for p in announced(bot) if "What changed" in p["text"]]


@pytest.mark.parametrize("zone", ["America/Los_Angeles", "Pacific/Auckland"])
async def test_the_quarter_ends_at_the_teams_midnight(bot, clock, zone):
    point = await file(bot, "the deploy pipeline times out on large monorepos", USER)
    await pick(bot, f"report:{point}")
    await command(bot, "focus publish", HOST)
    with bot.db.session() as s:
        period = s.exec(select(FocusPeriod)).one()
    end = datetime(2026, 7, 1, tzinfo=ZoneInfo(zone))
    assert period.key == "2026-Q2" and period.ends_at == end and period.ends_at.utcoffset() == timedelta(0)
    await tick(bot, clock, end - timedelta(minutes=15))  # 23:45 local on 30 June: still the quarter
    assert reports_posted(bot) == []
    await tick(bot, clock, end + timedelta(minutes=15))
    assert len(reports_posted(bot)) == 1 and "2026-Q2" in reports_posted(bot)[0]["text"]


async def test_an_item_merged_after_it_was_picked_follows_the_merge(bot, clock):
    clock.move_to(datetime(2026, 10, 5, 9, tzinfo=UTC))
    kept = await file(bot, "the deploy pipeline times out on large monorepos", USER)
    picked = await file(bot, "deploys time out on the monorepo again", OTHER)
    await pick(bot, f"report:{picked}")
    await command(bot, "focus publish", HOST)
    await bot.drain()

    clock.move_to(datetime(2026, 10, 12, 9, tzinfo=UTC))  # merged after it was picked and published
    await card_click(bot, picked, "triage_merge")
    await submit_modal(bot, HOST, f"FB-{kept}")
    await command(bot, f"link FB-{kept} https://github.com/acme/platform/issues/42", HOST)
    clock.move_to(datetime(2026, 11, 3, 11, tzinfo=UTC))
    before = len(bot.fake.calls_to("chat.postMessage"))
    body, headers = tr.github("issues", tr.github_issue("acme/platform", 42))
    assert (await bot.http.post("/webhooks/github", content=body, headers=headers)).status_code == 200
    await bot.drain()
    told = [c.body["channel"] for c in bot.fake.calls_to("chat.postMessage")[before:]
            if c.body["channel"].startswith("U") and "acme/platform#42" in json.dumps(c.body)]
    assert set(told) == {USER, OTHER}

    await tick(bot, clock, datetime(2026, 11, 3, 11, 15, tzinfo=UTC))
    post = json.dumps([c.body for c in bot.fake.calls_to("chat.update") if c.body.get("channel") == ANNOUNCE][-1])
    assert f"FB-{picked}* (merged into FB-{kept})" in post and "raised by 2 people" in post and "fixed" in post
    data = bot.db.transact(focus_data.gather, policy=bot.deps.policy)
    [item] = data["items"]
    assert (item["fixed"], item["people"], item["now"]["told_fixed"], item["merged_into"]) == (True, 2, 2, f"FB-{kept}")
    assert [link["key"] for link in item["links"]] == ["acme/platform#42"]

    await tick(bot, clock, datetime(2027, 1, 1, 0, 15, tzinfo=UTC))
    [final] = reports_posted(bot)
    assert "2 reporters told it was fixed" in json.dumps(final) and ":white_check_mark: fixed" in json.dumps(final)
    assert f"(merged into FB-{kept})" in focus_data.report_text(bot.db.transact(focus_data.gather, policy=bot.deps.policy))


async def test_a_person_behind_two_items_hears_once(bot, clock):
    first = await file(bot, "the deploy pipeline times out on large monorepos", USER)
    second = await file(bot, "the VPN drops every night", USER)
    dup = await file(bot, "deploys time out on the monorepo again", OTHER)
    await card_click(bot, dup, "triage_merge")
    await submit_modal(bot, HOST, f"FB-{first}")
    mine = await file(bot, "the VPN is down again at night", USER)  # their own duplicate of their own report
    await card_click(bot, mine, "triage_merge")
    await submit_modal(bot, HOST, f"FB-{second}")
    await pick(bot, f"report:{first}")
    await pick(bot, f"report:{second}")
    await command(bot, "focus publish", HOST)
    await bot.drain()
    dms = [c.body for c in bot.fake.calls_to("chat.postMessage") if "focus for" in c.body["text"]]
    assert sorted(d["channel"] for d in dms) == sorted([USER, OTHER])
    to_them = json.dumps(next(d for d in dms if d["channel"] == USER))
    assert f"FB-{first}" in to_them and f"FB-{second}" in to_them
    data = bot.db.transact(focus_data.gather, policy=bot.deps.policy)
    assert [i["people"] for i in data["items"]] == [2, 1]


async def test_two_hosts_pick_at_once_on_two_instances(bot, clock):
    """The focus holds 3: with 2 picked, two hosts on two instances pick the third at the same moment."""
    ids = [await file(bot, f"friction number {n}", USER) for n in range(4)]
    await pick(bot, f"report:{ids[0]}")
    await pick(bot, f"report:{ids[1]}")
    settings = make_settings(bot.fake, bot.db, **tr.SETTINGS)
    app, deps = create_app(settings, bot.deps.policy, bot.db, client=AsyncWebClient(token=TOKEN, base_url=settings.slack_api_url))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_web_app(app, deps, run_background=False)),
                                 base_url="http://testserver") as http:
        other = Bot(deps=deps, http=http, fake=bot.fake, db=bot.db)
        told = len(bot.fake.calls_to("response_url"))
        await asyncio.gather(press(bot, f"report:{ids[2]}", HOST), press(other, f"report:{ids[3]}", HOST2, http=http))
        await bot.settle()
    assert len(rows(bot, FocusItem)) == 3
    texts = [c.body.get("text", "") for c in bot.fake.calls_to("response_url")[told:]]
    assert len(texts) == 2 and sum("holds 3 items" in t for t in texts) == 1, texts


def test_a_pick_waits_for_the_other_hosts_pick(db, policy):
    """The same race, made certain: one host's pick holds its transaction open; the other's waits
    for it (on PostgreSQL seen waiting on the lock) and is then told the focus is full."""
    from storage.friction import FrictionDraft, file_friction
    from storage.models import Source

    now = datetime(2026, 5, 11, 16, tzinfo=UTC)
    ids = []
    with db.session() as s, s.begin():
        for n in range(4):
            draft = FrictionDraft(team_id="T0TEAM001", filed_by=USER, reporter_id=USER, text=f"friction number {n}",
                                  source=Source.command, intake_key=f"race:{n}")
            ids.append(file_friction(session=s, draft=draft).point.id)
    for n in (0, 1):
        db.transact(focus.pick, policy=policy, actor=HOST, subject=focus.Subject("report", str(ids[n])), now=now)
    outcome: dict = {}

    def second_host():
        try:
            outcome["item"] = db.transact(focus.pick, policy=policy, actor=HOST2, subject=focus.Subject("report", str(ids[3])), now=now)
        except focus.FocusError as exc:
            outcome["refused"] = str(exc)

    with db.session() as s, s.begin():
        focus.pick(session=s, policy=policy, actor=HOST, subject=focus.Subject("report", str(ids[2])), now=now)
        racer = threading.Thread(target=second_host)
        racer.start()
        if db.engine.dialect.name == "postgresql":
            # Seen to wait: PostgreSQL says the racer is blocked (pg_blocking_pids). CI twice met a racer
            # it never showed as blocked within the deadline; then the outcome below is still checked.
            deadline = time.monotonic() + WAIT_SECONDS
            with db.engine.connect() as watch:
                while not watch.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                             "AND cardinality(pg_blocking_pids(pid)) > 0")).scalar():
                    assert racer.is_alive(), f"the second pick did not wait for the first: {outcome}"
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.02)
    racer.join(timeout=30)
    assert outcome == {"refused": "The focus holds 3 items; drop one first."}
    with db.session() as s:
        assert len(s.exec(select(FocusItem)).all()) == 3
