"""Triage from the card, the modals and the commands, over signed requests against the fake Slack."""

import asyncio
import json
from datetime import UTC, datetime

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import delete, select

from bot.policy import Hosts, Policy, Triage
from bot.triage.listeners import CardUpdates
from storage.models import FrictionChange, FrictionPoint, FrictionTag, OutboxMessage, Reporter, TrackerLink
from tests.fake_slack import TOKEN
from tests.slack_requests import (
    USER,
    app_home_opened,
    block_actions,
    element_action,
    event_callback,
    interactive,
    slash_command,
    view_submission,
)

HOST, HOST2, STRANGER = "U0HOST0001", "U0HOST0002", "U0STRANGE1"
TRIAGE_CHANNEL = "C0TRIAGE01"


@pytest.fixture
def policy() -> Policy:
    return Policy(hosts=Hosts(users=[HOST, HOST2]), triage=Triage(channel=TRIAGE_CHANNEL))


def load(db, point_id: int) -> FrictionPoint:
    with db.session() as s:
        return s.get(FrictionPoint, point_id)


def history(db, point_id: int) -> list[FrictionChange]:
    with db.session() as s:
        return list(s.exec(select(FrictionChange).where(FrictionChange.friction_point_id == point_id).order_by(FrictionChange.id)))


async def file(bot, text: str, user: str = USER) -> int:
    await bot.post(*slash_command(text, fake_url=bot.fake.url, user=user))
    await bot.drain()
    with bot.db.session() as s:
        return s.exec(select(FrictionPoint.id).order_by(FrictionPoint.id.desc())).first()


def card_posts(bot) -> list:
    return [c for c in bot.fake.calls_to("chat.postMessage") if c.body["channel"] == TRIAGE_CHANNEL]


def latest_card(bot, point_id: int) -> dict:
    """The card as Slack last saw it for this point (post or update)."""
    point = load(bot.db, point_id)
    calls = [c.body for c in bot.fake.calls if c.method in ("chat.postMessage", "chat.update")
             and c.body.get("channel") == TRIAGE_CHANNEL and f"FB-{point_id}" in json.dumps(c.body)]
    assert point.card_ts, "the card was never posted"
    return calls[-1]


def element(card: dict, action_id: str) -> tuple[dict, str]:
    for block in card["blocks"]:
        for el in block.get("elements", []):
            if el.get("action_id") == action_id:
                return el, block["block_id"]
    raise AssertionError(f"no {action_id} on the card")


async def click(bot, point_id: int, action_id: str, user: str = HOST, **chosen):
    el, block_id = element(latest_card(bot, point_id), action_id)
    url = f"{bot.fake.url}/response_url/{action_id}-{user}"
    resp = await bot.post(*interactive(block_actions([element_action(el, **chosen)], block_id=block_id, user=user,
                                                     response_url=url, channel=TRIAGE_CHANNEL)))
    assert resp.status_code == 200
    await bot.drain()


def ephemeral_texts(bot) -> list[str]:
    return [c.body.get("text", "") for c in bot.fake.calls_to("response_url")]


def dms_to(bot, user: str) -> list[str]:
    return [c.body["text"] for c in bot.fake.calls_to("chat.postMessage") if c.body["channel"] == user]


async def submit_modal(bot, user: str, value: str | None):
    view = bot.fake.calls_to("views.open")[-1].body["view"]
    values = {"triage_input": {"triage_input": {"type": "plain_text_input", "value": value}}}
    resp = await bot.post(*interactive(view_submission(view, values, user=user)))
    await bot.drain()
    return resp


async def test_a_new_report_gets_one_card_in_the_triage_channel(bot):
    point_id = await file(bot, "the artifact cache is cold every morning")
    [post] = card_posts(bot)
    assert "FB-1" in post.body["text"]
    ids = {el["action_id"] for b in post.body["blocks"] for el in b.get("elements", []) if "action_id" in el}
    assert {"triage_assign_me", "triage_assign", "triage_severity", "triage_tags", "triage_link",
            "triage_merge", "triage_resolve", "triage_decline"} <= ids
    point = load(bot.db, point_id)
    assert point.card_channel == TRIAGE_CHANNEL and point.card_ts


async def test_assign_to_me_picks_it_up_updates_the_card_in_place_and_dms_once(bot):
    point_id = await file(bot, "terraform plan takes 20 minutes")
    await click(bot, point_id, "triage_assign_me")
    await click(bot, point_id, "triage_severity", selected_option={"text": {"type": "plain_text", "text": "High"}, "value": "high"})
    point = load(bot.db, point_id)
    assert (point.assignee, point.status, point.severity) == (HOST, "acknowledged", "high")
    assert point.first_response_at is not None
    assert [(h.action, h.actor) for h in history(bot.db, point_id)] == [("filed", USER), ("assigned", HOST), ("severity", HOST)]
    assert len(card_posts(bot)) == 1  # never re-posted
    updates = bot.fake.calls_to("chat.update")
    assert len(updates) == 2 and all(u.body["ts"] == point.card_ts for u in updates)
    assert f"<@{HOST}>" in json.dumps(updates[-1].body["blocks"])
    [dm] = dms_to(bot, USER)  # "picked up", once: the severity change is not news to the reporter
    assert "picked up" in dm


async def test_tags_from_the_card_replace_the_automatic_ones(bot):
    point_id = await file(bot, "the deploy pipeline is flaky")
    assert all(t.automatic for t in load(bot.db, point_id).tags)
    opt = lambda v: {"text": {"type": "plain_text", "text": v}, "value": v}  # noqa: E731
    await click(bot, point_id, "triage_tags", selected_options=[opt("ci"), opt("docs")])
    assert [(t.category, t.automatic) for t in load(bot.db, point_id).tags] == [("ci", False), ("docs", False)]


@pytest.mark.parametrize("action_id,chosen", [
    ("triage_assign_me", {}),
    ("triage_assign", {"selected_user": STRANGER}),
    ("triage_severity", {"selected_option": {"text": {"type": "plain_text", "text": "Low"}, "value": "low"}}),
    ("triage_tags", {"selected_options": []}),
    ("triage_link", {}),
    ("triage_merge", {}),
    ("triage_resolve", {}),
    ("triage_decline", {}),
])
async def test_non_hosts_are_refused_and_nothing_changes(bot, action_id, chosen):
    point_id = await file(bot, "who can triage this report")
    before = load(bot.db, point_id)
    await click(bot, point_id, action_id, user=STRANGER, **chosen)
    after = load(bot.db, point_id)
    assert (after.status, after.assignee, after.severity, after.categories) == (before.status, before.assignee, before.severity, before.categories)
    assert [h.action for h in history(bot.db, point_id)] == ["filed"]
    assert any("Only office-hours hosts" in t for t in ephemeral_texts(bot))
    assert bot.fake.calls_to("views.open") == [] and bot.fake.calls_to("chat.update") == []


async def test_link_resolve_and_reopen_through_the_modals(bot):
    point_id = await file(bot, "no way to see why my pod was evicted")
    await click(bot, point_id, "triage_link")
    assert (await submit_modal(bot, HOST, "not a url")).json()["response_action"] == "errors"
    assert (await submit_modal(bot, HOST, "https://github.com/acme/platform/issues/42")).status_code == 200
    point = load(bot.db, point_id)
    assert point.status == "linked" and [(lnk.tracker, lnk.key) for lnk in point.links] == [("github", "acme/platform#42")]
    assert "acme/platform#42" in json.dumps(latest_card(bot, point_id)["blocks"])
    await click(bot, point_id, "triage_resolve")
    await submit_modal(bot, HOST, "Eviction reasons now show in the dashboard")
    point = load(bot.db, point_id)
    assert point.status == "resolved" and point.resolved_at and point.resolution_note.startswith("Eviction")
    dms = dms_to(bot, USER)
    assert len(dms) == 2 and "acme/platform#42" in dms[0] and "resolved" in dms[1]
    await click(bot, point_id, "triage_reopen")
    assert load(bot.db, point_id).status == "linked"
    assert [h.action for h in history(bot.db, point_id)] == ["filed", "linked", "resolved", "reopened"]


async def test_wont_fix_needs_a_reason_and_tells_the_reporter(bot):
    point_id = await file(bot, "please support cobol in the ci images")
    await click(bot, point_id, "triage_decline")
    assert (await submit_modal(bot, HOST, "  ")).json()["errors"]["triage_input"]
    assert load(bot.db, point_id).status == "new"
    await submit_modal(bot, HOST, "No COBOL workloads planned this year")
    assert load(bot.db, point_id).status == "wont_fix"
    assert "No COBOL workloads" in dms_to(bot, USER)[-1] or "No COBOL workloads" in json.dumps(bot.fake.calls_to("chat.postMessage")[-1].body)


async def test_merging_a_duplicate_keeps_every_reporter_on_the_older_one(bot):
    older = await file(bot, "the staging database is down again")
    newer = await file(bot, "staging db unreachable since 9am", user="U0OTHER001")
    await click(bot, newer, "triage_merge")
    assert (await submit_modal(bot, HOST, "nonsense")).json()["response_action"] == "errors"
    await submit_modal(bot, HOST, f"fb-{older}")
    old, new = load(bot.db, older), load(bot.db, newer)
    assert {r.user_id for r in old.reporters} == {USER, "U0OTHER001"}
    assert new.duplicate_of_id == older and new.status == "duplicate"
    # A click on the merged card's stale buttons answers clearly and changes nothing.
    el, block_id = element(card_posts(bot)[1].body, "triage_assign_me")
    await bot.post(*interactive(block_actions([element_action(el)], block_id=block_id, user=HOST,
                                              response_url=f"{bot.fake.url}/response_url/stale", channel=TRIAGE_CHANNEL)))
    await bot.drain()
    assert f"merged into FB-{older}" in ephemeral_texts(bot)[-1]
    assert load(bot.db, newer).assignee is None


async def test_a_click_on_a_deleted_report_answers_clearly(bot):
    point_id = await file(bot, "this report will be deleted")
    card = latest_card(bot, point_id)
    with bot.db.session() as s, s.begin():
        for table in (FrictionChange, FrictionTag, Reporter, TrackerLink, OutboxMessage):
            s.exec(delete(table).where(table.friction_point_id == point_id))
        s.exec(delete(FrictionPoint).where(FrictionPoint.id == point_id))
    el, block_id = element(card, "triage_assign_me")
    await bot.post(*interactive(block_actions([element_action(el)], block_id=block_id, user=HOST,
                                              response_url=f"{bot.fake.url}/response_url/gone", channel=TRIAGE_CHANNEL)))
    await bot.drain()
    assert "no longer exists" in ephemeral_texts(bot)[-1]


async def test_two_hosts_clicking_at_once_end_in_one_consistent_state(bot):
    point_id = await file(bot, "both hosts want this one")
    card = latest_card(bot, point_id)
    el, block_id = element(card, "triage_assign_me")
    requests = [
        interactive(block_actions([element_action(el)], block_id=block_id, user=host,
                                  response_url=f"{bot.fake.url}/response_url/{host}", channel=TRIAGE_CHANNEL))
        for host in (HOST, HOST2)
    ]
    await asyncio.gather(*(bot.post(*r) for r in requests))
    await bot.drain()
    point = load(bot.db, point_id)
    entries = [h for h in history(bot.db, point_id) if h.action == "assigned"]
    assert len(entries) == 2 and point.assignee == entries[-1].new  # both applied, in order
    assert entries[1].old == entries[0].new  # the second saw the first: no lost update
    assert f"<@{point.assignee}>" in json.dumps(bot.fake.calls_to("chat.update")[-1].body["blocks"])
    assert len(dms_to(bot, USER)) == 1


async def command(bot, text: str, user: str = HOST) -> str:
    await bot.post(*slash_command(text, fake_url=bot.fake.url, user=user))
    await bot.drain()
    last = bot.fake.calls_to("response_url")[-1].body
    return last.get("text", "") + json.dumps(last.get("blocks", []))


async def test_host_commands_link_resolve_and_queue(bot):
    low = await file(bot, "small annoyance in the docs")
    high = await file(bot, "prod deploys blocked entirely", user="U0OTHER001")
    await click(bot, high, "triage_severity", selected_option={"text": {"type": "plain_text", "text": "Blocker"}, "value": "blocker"})
    queue = await command(bot, "queue")
    assert queue.index(f"FB-{high}") < queue.index(f"FB-{low}")  # blocker first
    assert "Only office-hours hosts" in await command(bot, "queue", user=STRANGER)
    assert "Usage" in await command(bot, f"link FB-{low}")
    assert "Only office-hours hosts" in await command(bot, f"link FB-{low} https://linear.app/acme/issue/ENG-9/x", user=STRANGER)
    assert load(bot.db, low).links == []
    assert "Linked" in await command(bot, f"link FB-{low} https://linear.app/acme/issue/ENG-9/docs-search")
    assert [(lnk.tracker, lnk.key) for lnk in load(bot.db, low).links] == [("linear", "ENG-9")]
    assert "Resolved" in await command(bot, f"resolve FB-{low} rewrote the page")
    assert load(bot.db, low).resolution_note == "rewrote the page"
    assert "already resolved" in await command(bot, f"resolve FB-{low}")
    assert "no longer exists" in await command(bot, "resolve FB-999")


async def test_hosts_home_shows_the_queue_numbers_and_filters(bot):
    await file(bot, "ci runners are slow")
    await file(bot, "vpn keeps dropping", user="U0OTHER001")
    await bot.post(*event_callback(app_home_opened(user=HOST)))
    await bot.settle()
    view = bot.fake.calls_to("views.publish")[-1].body["view"]
    shown = json.dumps(view)
    assert "Triage queue" in shown and "ci runners are slow" in shown and "vpn keeps dropping" in shown
    assert "*Open*\\n2" in shown
    filters = next(b for b in view["blocks"] if b.get("block_id") == "home_filters")
    category = filters["elements"][0]
    choice = {"text": {"type": "plain_text", "text": "Access"}, "value": "access"}
    payload = block_actions([element_action(category, selected_option=choice)], block_id="home_filters", user=HOST,
                            response_url="", view=view | {"state": {"values": {}}})
    await bot.post(*interactive(payload))
    await bot.settle()
    filtered = json.dumps(bot.fake.calls_to("views.publish")[-1].body["view"])
    assert "vpn keeps dropping" in filtered and "ci runners are slow" not in filtered
    # Someone who is not a host sees their own reports, not the queue.
    await bot.post(*event_callback(app_home_opened(user=USER)))
    await bot.settle()
    assert "Triage queue" not in json.dumps(bot.fake.calls_to("views.publish")[-1].body["view"])


async def test_hosts_from_a_user_group_are_looked_up_once_and_cached(fake_slack, db):
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.runtime.hosts import HostDirectory
    from bot.runtime.workspaces import Workspaces
    from tests.fake_slack import TOKEN

    fake_slack.usergroups["S0PLATFORM"] = ["U0GROUP001"]
    client = AsyncWebClient(token=TOKEN, base_url=fake_slack.url + "/api/")
    hosts = HostDirectory(Hosts(users=[HOST], usergroup="S0PLATFORM"), Workspaces(client=client))
    assert await hosts.is_host("U0GROUP001") and await hosts.is_host(HOST)
    assert not await hosts.is_host(STRANGER)
    assert len(fake_slack.calls_to("usergroups.users.list")) == 1
    hosts.refresh_seconds = 0  # due for a refresh: a member who left the group is no longer a host
    fake_slack.usergroups["S0PLATFORM"] = []
    assert not await hosts.is_host("U0GROUP001")


async def test_a_card_rendered_from_an_older_state_is_not_sent_after_a_newer_one(fake_slack):
    """Two clicks' cards come out of their transactions in either order: Slack keeps the newest."""
    client = AsyncWebClient(token=TOKEN, base_url=f"{fake_slack.url}/api/")
    cards = CardUpdates(lambda point_id: f"FB-{point_id}")

    def point(minute: int) -> FrictionPoint:
        return FrictionPoint(id=7, card_channel=TRIAGE_CHANNEL, card_ts="1700000000.000007",
                             updated_at=datetime(2025, 6, 1, 12, minute, tzinfo=UTC))

    assert await cards.show(client, point(2), {"text": "FB-7: second"})
    assert not await cards.show(client, point(1), {"text": "FB-7: first"})  # rendered before, came out after
    assert await cards.show(client, point(3), {"text": "FB-7: third"})
    assert not await cards.show(client, point(3), None)  # not posted yet
    assert [c.body["text"] for c in fake_slack.calls_to("chat.update")] == ["FB-7: second", "FB-7: third"]
