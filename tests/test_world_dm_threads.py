"""Issue #27, item 5: a reply in a DM thread. A developer DMs the bot (filed as FB-1) and then replies
in the thread of the bot's answer ("also on staging"): that is more about FB-1, not FB-2. The reply
is added to FB-1 (its words, a post in its card thread for the hosts) and confirmed once in the DM
thread. Slack's own message.im payload (tests/fixtures/slack/events), through the real app, on
SQLite and PostgreSQL."""

import json
from pathlib import Path

import pytest
from sqlmodel import select

from bot.direct_messages.service import ANSWERED_IN
from bot.policy import Hosts, Policy, Triage
from bot.triage import service as triage
from storage.models import FrictionChange, FrictionPoint
from tests.slack_requests import event_callback

FIXTURE = Path(__file__).parent / "fixtures" / "slack" / "events" / "message_im.json"
DM, DEV, TRIAGE = "D0442US94JD", "U043H11ES4V", "C0TRIAGE01"


@pytest.fixture
def policy() -> Policy:
    return Policy(hosts=Hosts(users=["U0HOST0001"]), triage=Triage(channel=TRIAGE))


def dm(words: str, ts: str, **changes) -> dict:
    event = json.loads(FIXTURE.read_text())["event"]
    return {**event, "text": words, "ts": ts, "event_ts": ts, **changes}


def reply(words: str, ts: str, thread_ts: str) -> dict:
    return dm(words, ts, thread_ts=thread_ts, parent_user_id="UBOT00001")


async def send(bot, event: dict, **kw) -> None:
    assert (await bot.post(*event_callback(event, **kw))).status_code == 200
    await bot.drain()


def points(db) -> list[FrictionPoint]:
    with db.session() as s:
        return list(s.exec(select(FrictionPoint).order_by(FrictionPoint.id)).all())


def answer_ts(db, point_id: int) -> str:
    with db.session() as s:
        return s.exec(select(FrictionChange.new).where(FrictionChange.friction_point_id == point_id,
                                                        FrictionChange.action == ANSWERED_IN)).one()


def dm_posts(bot) -> list[dict]:
    return [c.body for c in bot.fake.calls_to("chat.postMessage") if c.body["channel"] == DM]


async def test_a_reply_in_the_thread_of_the_bots_answer_is_added_to_the_report(bot):
    await send(bot, dm("the VPN drops every hour", "1700000100.000100"))
    [fb1] = points(bot.db)
    thread = answer_ts(bot.db, fb1.id)
    for retry in (None, 1):
        await send(bot, reply("also on staging", "1700000200.000100", thread), event_id="Ev0THREAD01", retry_num=retry)

    [fb1] = points(bot.db)  # no FB-2
    assert fb1.text == "the VPN drops every hour\nalso on staging"
    added = [p for p in dm_posts(bot) if p.get("thread_ts") == thread]
    assert len(added) == 1 and f"Added to FB-{fb1.id}" in added[0]["text"]
    assert not any("Filed as" in p["text"] and p is not dm_posts(bot)[0] for p in dm_posts(bot))
    alerts = [c.body for c in bot.fake.calls_to("chat.postMessage") if c.body.get("thread_ts") == fb1.card_ts]
    assert len(alerts) == 1 and "also on staging" in json.dumps(alerts[0]["blocks"])
    assert any(c.body.get("ts") == fb1.card_ts for c in bot.fake.calls_to("chat.update"))  # the card shows the words


async def test_a_reply_in_the_thread_of_the_reporters_own_message_is_added_too(bot):
    await send(bot, dm("helm lint is slow", "1700000300.000100"))
    await send(bot, reply("about 4 minutes per chart", "1700000400.000100", "1700000300.000100"))
    [point] = points(bot.db)
    assert point.text.endswith("about 4 minutes per chart")


async def test_a_reply_to_a_merged_duplicate_goes_to_the_report_it_joined(bot):
    await send(bot, dm("the registry is slow", "1700000500.000100"), event_id="Ev0DMA")
    await send(bot, dm("pulls from the registry take minutes", "1700000600.000100"), event_id="Ev0DMB")
    first, second = points(bot.db)
    with bot.db.session() as s, s.begin():
        triage.merge(session=s, point_id=second.id, into_id=first.id, actor="U0HOST0001", prefix="FB")
    await send(bot, reply("eu-west only", "1700000700.000100", answer_ts(bot.db, second.id)))
    first, second = points(bot.db)
    assert first.text.endswith("eu-west only") and not second.text.endswith("eu-west only")
    assert any(f"Added to FB-{first.id}" in p["text"] for p in dm_posts(bot))


async def test_a_reply_in_some_other_thread_is_still_a_new_report(bot):
    await send(bot, reply("the docs search is broken", "1700000800.000100", "1690000000.000001"))
    assert len(points(bot.db)) == 1


def test_answers_to_different_people_do_not_wait_for_each_other():
    """The answer's hook records where it went, but the answers are chained by DM channel (like any
    unhooked message), not one after another across everyone (as a card's post and its updates are)."""
    import asyncio

    from bot.direct_messages.service import DM_ANSWER_PURPOSE, DmAnswerHook
    from bot.runtime.outbox.claiming import Batch, chains
    from storage.models import OutboxMessage

    def answer(i: int, channel: str) -> OutboxMessage:
        return OutboxMessage(id=i, dedupe_key=f"dm-filed:{i}", method="chat.postMessage", payload=json.dumps({"channel": channel}),
                             purpose=DM_ANSWER_PURPOSE, friction_point_id=i)

    batch = Batch([answer(1, "D0AAAAAAA1"), answer(2, "D0BBBBBBB2"), answer(3, "D0AAAAAAA1")], latest=0.0, semaphore=asyncio.Semaphore(4))
    assert sorted([m.id for m in chain] for chain in chains(batch, {DM_ANSWER_PURPOSE: DmAnswerHook()})) == [[1, 3], [2]]
