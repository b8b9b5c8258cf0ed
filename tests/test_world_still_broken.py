"""Issue #27, item 6: "Still broken" pressed by the reporter of a merged duplicate. FB-2 was merged
into FB-1; FB-1 was linked and its issue closed; FB-2's reporter was told (about their own words).
Their "Still broken" reopens FB-1 (the report hosts watch), says so, and alerts in FB-1's card
thread, not in FB-2's old one. Through the real app: a signed GitHub delivery, the notice's button,
the modal's submission; SQLite and PostgreSQL."""

import json

import pytest
from sqlmodel import select

from bot.policy import Hosts, Policy, Triage
from bot.triage import service as triage
from storage.models import FrictionChange, FrictionPoint
from tests import tracker_requests as tr
from tests.slack_requests import USER, block_actions, element_action, interactive, slash_command, view_submission

HOST, OTHER = "U0HOST0001", "U0OTHER001"


@pytest.fixture
def policy() -> Policy:
    return Policy(hosts=Hosts(users=[HOST]), triage=Triage(channel="C0TRIAGE01"))


@pytest.fixture
def settings_overrides() -> dict:
    return tr.SETTINGS


async def run(bot, text: str, user: str) -> None:
    await bot.post(*slash_command(text, fake_url=bot.fake.url, user=user))
    await bot.drain()


def load(bot, point_id: int) -> FrictionPoint:
    with bot.db.session() as s:
        return s.get(FrictionPoint, point_id)


async def press_still_broken(bot, user: str, comment: str):
    [notice] = [c.body for c in bot.fake.calls_to("chat.postMessage")
                if c.body["channel"] == user and any(b.get("block_id") == "closure_feedback" for b in c.body.get("blocks", []))]
    broken = next(e for b in notice["blocks"] if b.get("block_id") == "closure_feedback" for e in b["elements"]
                  if e["action_id"] == "closure_broken")
    url = f"{bot.fake.url}/response_url/notice"
    await bot.post(*interactive(block_actions([element_action(broken)], block_id="closure_feedback", user=user,
                                              response_url=url, channel="D0DM000002")))
    await bot.drain()
    view = bot.fake.calls_to("views.open")[-1].body["view"]
    values = {"closure_comment": {"closure_comment": {"type": "plain_text_input", "value": comment}}}
    resp = await bot.post(*interactive(view_submission(view, values, user=user)))
    await bot.drain()
    return resp.json()


async def test_still_broken_from_a_merged_duplicate_reopens_the_report_it_joined(bot):
    await run(bot, "staging database is down", USER)
    await run(bot, "staging db unreachable since 9am", OTHER)
    with bot.db.session() as s, s.begin():
        triage.merge(session=s, point_id=2, into_id=1, actor=HOST, prefix="FB")
    await bot.drain()
    await run(bot, "link FB-1 https://github.com/acme/platform/issues/42", HOST)
    resp = await bot.http.post("/webhooks/github", content=(d := tr.github("issues", tr.github_issue("acme/platform", 42)))[0], headers=d[1])
    assert resp.status_code == 200
    await bot.drain()
    assert load(bot, 1).status == "resolved"
    posts_before = len(bot.fake.calls_to("chat.postMessage"))

    answer = await press_still_broken(bot, OTHER, "still cannot reach it from eu-west")

    assert answer["response_action"] == "update"
    shown = json.dumps(answer["view"])
    assert "FB-1 is back" in shown and "FB-2 is back" not in shown
    fb1, fb2 = load(bot, 1), load(bot, 2)
    assert fb1.status in ("new", "acknowledged") and fb1.resolved_at is None
    assert fb2.status == "duplicate" and fb2.duplicate_of_id == 1
    alerts = [c.body for c in bot.fake.calls_to("chat.postMessage")[posts_before:] if c.body.get("thread_ts")]
    assert [a["thread_ts"] for a in alerts] == [fb1.card_ts]
    assert "FB-1" in alerts[0]["text"] and "eu-west" in json.dumps(alerts[0]["blocks"])
    with bot.db.session() as s:
        change = s.exec(select(FrictionChange).where(FrictionChange.action == "still_broken")).one()
    assert change.friction_point_id == 1 and change.old == "resolved"
