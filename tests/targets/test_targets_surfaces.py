"""Response targets where hosts and reporters see them: the card's due line (rendered at send time,
exact at a frozen clock), the card's "Ask the reporter", the queue and App Home due first with
breaches marked, and the reporter's answer in the report's thread, by DM or with Add details
resuming the clocks. SQLite and PostgreSQL."""

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import select

from bot.intake import filing
from bot.policy import Hosts, Policy, Targets, Triage
from bot.targets import alerts as target_alerts
from bot.triage import flows as triage_flow
from storage.friction import FrictionDraft
from storage.models import FrictionChange, FrictionPoint, Reporter, Source, utcnow
from tests.slack_requests import (
    USER,
    app_home_opened,
    block_action,
    event_callback,
    interactive,
    slash_command,
    view_submission,
)

HOST, STRANGER = "U0HOST0001", "U0STRANGE1"
TRIAGE, GENERAL = "C0TRIAGE01", "C0GENERAL1"
T0 = datetime(2026, 6, 1, 10, 0, tzinfo=timezone.utc)
TARGETS = Targets.model_validate({
    "hours": "00:00-24:00", "working_days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
    "severities": {"medium": {"first_response": "1h", "resolution": "2h"}, "high": {"first_response": "8h", "resolution": "1d"}},
})


@pytest.fixture
def policy() -> Policy:
    return Policy(hosts=Hosts(users=[HOST]), triage=Triage(channel=TRIAGE), targets=TARGETS)


def add(db, *, created: datetime, severity: str = "medium", text: str = "the deploy hangs", key: str | None = None,
        card: bool = True) -> int:
    with db.session() as s, s.begin():
        point = FrictionPoint(team_id="T0TEAM001", filed_by=USER, text=text, severity=severity, source=Source.command,
                              intake_key=key or f"test:{uuid.uuid4().hex}", created_at=created, updated_at=created,
                              card_channel=TRIAGE if card else None, card_ts=f"1700000000.{uuid.uuid4().int % 10**6:06d}" if card else None)
        point.reporters = [Reporter(user_id=USER, team_id="T0TEAM001", reported_at=created)]
        s.add(point)
        s.flush()
        return point.id


def due_block(card: dict) -> str | None:
    found = [b for b in card["blocks"] if b.get("block_id", "").endswith(":due")]
    return found[0]["elements"][0]["text"] if found else None


def render(db, policy, point_id, now) -> dict:
    return db.transact(lambda session: triage_flow.render_card(session=session, policy=policy, point=session.get(FrictionPoint, point_id), now=now))


def waiting(db, point_id: int) -> bool:
    with db.session() as s:
        return target_alerts.is_waiting(session=s, point_id=point_id)


# ------------------------------------------------------------------ the card


def test_the_card_says_what_is_due_and_when_exact_to_the_minute(db, policy):
    point_id = add(db, created=T0)
    soon = due_block(render(db, policy, point_id, T0 + timedelta(minutes=20)))
    due_at = int((T0 + timedelta(hours=1)).timestamp())
    assert soon == (f":stopwatch: first response due in 40 m (<!date^{due_at}^{{date_short_pretty}} {{time}}|2026-06-01 11:00 UTC>)"
                    f" · resolution due in 1 h 40 m (<!date^{due_at + 3600}^{{date_short_pretty}} {{time}}|2026-06-01 12:00 UTC>)")
    assert due_block(render(db, policy, point_id, T0 + timedelta(minutes=50))).startswith(":hourglass_flowing_sand: first response due in 10 m")
    late = due_block(render(db, policy, point_id, T0 + timedelta(hours=26, minutes=5)))
    assert late.startswith(":rotating_light: first response overdue by 1 d 1 h") and "resolution overdue by 1 d 5 m" in late

    # A host asks the reporter: first response met, resolution paused.
    with db.session() as s, s.begin():
        point = s.get(FrictionPoint, point_id)
        target_alerts.ask_reporter(session=s, point=point, actor=HOST, question="which runner?")
        change = s.exec(select(FrictionChange).where(FrictionChange.friction_point_id == point_id)).one()
        change.at = point.first_response_at = T0 + timedelta(minutes=30)
    assert due_block(render(db, policy, point_id, T0 + timedelta(hours=5))) == (
        ":double_vertical_bar: first response met · resolution paused (waiting for the reporter)")

    # Without targets, no line.
    assert due_block(render(db, Policy(hosts=policy.hosts, triage=policy.triage), point_id, T0)) is None


async def test_the_posted_card_shows_the_due_line_and_ask_the_reporter_pauses_it(bot):
    await bot.post(*slash_command("the staging deploy hangs", fake_url=bot.fake.url))
    await bot.drain()
    [card] = [c.body for c in bot.fake.calls_to("chat.postMessage") if c.body["channel"] == TRIAGE]
    assert due_block(card).startswith(":stopwatch: first response due in 59 m")
    button = next(e for b in card["blocks"] if b["type"] == "actions" for e in b["elements"] if e["action_id"] == "target_ask_button")
    point_id = int(button["value"])

    # Not a host: refused, no modal.
    await bot.post(*interactive(block_action(button["action_id"], button["value"], user=STRANGER, response_url=bot.fake.url + "/response_url/ask")))
    await bot.settle()
    assert bot.fake.calls_to("views.open") == [] and "Only office-hours hosts" in bot.fake.calls_to("response_url")[-1].body["text"]

    await bot.post(*interactive(block_action(button["action_id"], button["value"], user=HOST, response_url=bot.fake.url + "/response_url/ask")))
    await bot.settle()
    [opened] = bot.fake.calls_to("views.open")
    view = opened.body["view"] if isinstance(opened.body["view"], dict) else json.loads(opened.body["view"])
    empty = await bot.post(*interactive(view_submission(view, {"target_ask": {"target_ask_input": {"type": "plain_text_input", "value": " "}}}, user=HOST)))
    assert "Write your question first" in empty.text
    asked = {"target_ask": {"target_ask_input": {"type": "plain_text_input", "value": "which runner were you on?"}}}
    stranger = await bot.post(*interactive(view_submission(view, asked, user=STRANGER)))
    assert "Only office-hours hosts" in stranger.text and not waiting(bot.db, point_id)
    reply = await bot.post(*interactive(view_submission(view, asked, user=HOST)))
    assert reply.status_code == 200 and reply.text in ("", "null")
    await bot.drain()
    assert waiting(bot.db, point_id)
    question = [c.body for c in bot.fake.calls_to("chat.postMessage") if c.body["channel"] == USER and "question" in c.body["text"]]
    assert len(question) == 1 and "which runner were you on?" in json.dumps(question[0])
    update = bot.fake.calls_to("chat.update")[-1].body
    assert due_block(update) == ":double_vertical_bar: first response met · resolution paused (waiting for the reporter)"
    again = await bot.post(*interactive(view_submission(view, asked, user=HOST)))
    assert "already waiting" in again.text


# ------------------------------------------------------------------ the queue and App Home


async def test_the_queue_and_home_put_what_is_due_first_and_mark_breaches(bot):
    now = utcnow()
    high = add(bot.db, created=now - timedelta(minutes=10), severity="high", text="prod deploys blocked")  # due in 7 h 50 m
    breached = add(bot.db, created=now - timedelta(hours=2), text="vpn drops")  # first response 1 h overdue
    soon = add(bot.db, created=now - timedelta(minutes=30), text="docs search broken")  # due in 30 m
    await bot.post(*slash_command("queue", fake_url=bot.fake.url, user=HOST))
    await bot.drain()
    shown = json.dumps(bot.fake.calls_to("response_url")[-1].body)
    assert "by what is due first" in shown
    assert shown.index(f"FB-{breached}") < shown.index(f"FB-{soon}") < shown.index(f"FB-{high}")
    row = next(b["text"]["text"] for b in bot.fake.calls_to("response_url")[-1].body["blocks"] if f"FB-{breached}" in json.dumps(b))
    assert ":rotating_light: *BREACHED* first response overdue by 1 h" in row

    await bot.post(*event_callback(app_home_opened(user=HOST)))
    await bot.settle()
    home = json.dumps(bot.fake.calls_to("views.publish")[-1].body["view"])
    assert "Ordered by what is due first" in home
    assert home.index(f"FB-{breached}") < home.index(f"FB-{soon}") < home.index(f"FB-{high}")
    assert "BREACHED" in home and "first response due in 29 m" in home


# ------------------------------------------------------------------ the reporter's answer resumes the clocks


async def ask(bot, point_id: int) -> None:
    await bot.post(*slash_command(f"ask FB-{point_id} which runner were you on?", fake_url=bot.fake.url, user=HOST))
    await bot.drain()
    assert waiting(bot.db, point_id)


def message(channel: str, text: str, *, user: str = USER, thread_ts: str | None = None, channel_type: str = "channel") -> dict:
    event = {"type": "message", "channel": channel, "user": user, "text": text, "ts": f"{utcnow().timestamp():.6f}",
             "channel_type": channel_type, "team": "T0TEAM001"}
    return event | ({"thread_ts": thread_ts} if thread_ts else {})


async def test_a_reply_in_the_reports_thread_resumes_the_clocks(bot):
    thread = "1700000000.000200"
    point_id = add(bot.db, created=utcnow(), key=f"message:{GENERAL}:{thread}")  # filed with the reaction on that message
    await ask(bot, point_id)
    await bot.post(*event_callback(message(GENERAL, "I can look too", user=STRANGER, thread_ts=thread)))
    await bot.post(*event_callback(message(GENERAL, "not in a thread")))
    await bot.drain()
    assert waiting(bot.db, point_id)  # a colleague's reply, or a message elsewhere, is not the reporter's answer
    await bot.post(*event_callback(message(GENERAL, "the arm64 one", thread_ts=thread)))
    await bot.drain()
    assert not waiting(bot.db, point_id)
    answer = [c.body for c in bot.fake.calls_to("chat.postMessage") if "answered about" in c.body["text"]]
    assert len(answer) == 1 and answer[0]["channel"] == TRIAGE and "the arm64 one" in json.dumps(answer[0])


async def test_a_dm_while_a_question_waits_is_the_answer_not_a_new_report(bot):
    point_id = add(bot.db, created=utcnow())
    await ask(bot, point_id)
    await bot.post(*event_callback(message("D0DM000001", "the arm64 one", channel_type="im")))
    await bot.drain()
    assert not waiting(bot.db, point_id)
    with bot.db.session() as s:
        assert len(s.exec(select(FrictionPoint)).all()) == 1  # nothing filed
    dms = [c.body for c in bot.fake.calls_to("chat.postMessage") if c.body["channel"] == "D0DM000001"]
    assert len(dms) == 1 and "went to the platform team" in dms[0]["text"]
    # Nothing waits any more: the next DM is a new report.
    await bot.post(*event_callback(message("D0DM000001", "another thing: the vpn drops", channel_type="im")))
    await bot.drain()
    with bot.db.session() as s:
        assert len(s.exec(select(FrictionPoint)).all()) == 2


async def test_add_details_answers_the_question(bot):
    point_id = add(bot.db, created=utcnow())
    await ask(bot, point_id)
    draft = FrictionDraft(team_id="T0TEAM001", filed_by=USER, reporter_id=USER, text="the deploy hangs on arm64 runners",
                          source=Source.command, intake_key="unused")
    with pytest.raises(filing.DetailsRefused):  # someone else's report: refused, still waiting
        bot.db.transact(filing.add_details, point_id=point_id, user=STRANGER, draft=draft, prefix="FB")
    assert waiting(bot.db, point_id)
    bot.db.transact(filing.add_details, point_id=point_id, user=USER, draft=draft, prefix="FB")
    assert not waiting(bot.db, point_id)


async def test_the_card_is_redrawn_in_place_at_the_warning_and_the_breach(bot):
    from bot.targets.jobs import JOB

    point_id = add(bot.db, created=utcnow() - timedelta(minutes=50))
    with bot.db.session() as s:
        card_ts = s.get(FrictionPoint, point_id).card_ts
    await bot.deps.scheduler.run(JOB, utcnow())
    await bot.drain()
    [warned] = [c.body for c in bot.fake.calls_to("chat.update")]
    assert warned["ts"] == card_ts and due_block(warned).startswith(":hourglass_flowing_sand: first response due in 9 m")
    await bot.deps.scheduler.run(JOB, utcnow())  # nothing new: no redraw
    await bot.drain()
    assert len(bot.fake.calls_to("chat.update")) == 1
    with bot.db.session() as s, s.begin():  # the clock moved on: an hour later
        point = s.get(FrictionPoint, point_id)
        point.created_at = utcnow() - timedelta(minutes=70)
        s.add(point)
    await bot.deps.scheduler.run(JOB, utcnow())
    await bot.drain()
    breached = bot.fake.calls_to("chat.update")[-1].body
    assert len(bot.fake.calls_to("chat.update")) == 2 and due_block(breached).startswith(":rotating_light: first response overdue by 10 m")
