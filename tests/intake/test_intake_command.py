"""The slash command, driven over HTTP with signed requests against the fake Slack."""

import json

import pytest
from sqlmodel import select

from storage.models import FrictionPoint, Reporter
from tests.slack_requests import USER, slash_command


def points(db) -> list[FrictionPoint]:
    with db.session() as s:
        return list(s.exec(select(FrictionPoint).order_by(FrictionPoint.id)).all())


async def test_one_line_files_a_data_point_and_answers_with_reference(bot):
    resp = await bot.post(*slash_command("the staging deploy pipeline is flaky again", fake_url=bot.fake.url))
    assert resp.status_code == 200
    [point] = points(bot.db)  # stored before the ack (issue #26, 1): the ack is the answer
    answer = resp.json()
    await bot.settle()
    assert bot.fake.calls_to("response_url") == []
    assert point.text == "the staging deploy pipeline is flaky again"
    assert point.source == "command" and point.status == "new" and point.filed_by == USER
    assert {t.category for t in point.tags} >= {"deploys", "environments"}
    assert all(t.automatic for t in point.tags)
    assert answer["response_type"] == "ephemeral"
    assert f"FB-{point.id}" in answer["text"]
    buttons = [e for b in answer["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert buttons[0]["action_id"] == "add_details" and buttons[0]["value"] == str(point.id)


async def test_empty_command_opens_the_modal(bot):
    await bot.post(*slash_command("", fake_url=bot.fake.url))
    await bot.settle()
    [call] = bot.fake.calls_to("views.open")
    view = call.body["view"]
    assert view["callback_id"] == "friction_report"
    assert [b["block_id"] for b in view["blocks"]] == ["text", "categories", "severity", "time_lost", "kind", "link"]
    assert points(bot.db) == []


async def test_help_and_unknown_subcommand_answer_with_usage_in_the_ack(bot):
    for text in ("help", "lsit"):
        resp = await bot.post(*slash_command(text, fake_url=bot.fake.url))
        assert resp.status_code == 200
        body = resp.json()
        assert body["response_type"] == "ephemeral"
        assert "/platform-feedback mine" in body["text"]
    assert "I don't know `lsit`" in body["text"]
    await bot.settle()
    assert points(bot.db) == []


async def test_mine_lists_only_the_callers_reports(bot):
    await bot.post(*slash_command("docs for the new runner are missing", fake_url=bot.fake.url))
    await bot.post(*slash_command("someone else's vpn trouble here", fake_url=bot.fake.url, user="U0OTHER001"))
    await bot.settle()
    await bot.post(*slash_command("mine", fake_url=bot.fake.url))
    await bot.settle()
    listing = bot.fake.calls_to("response_url")[-1].body
    shown = json.dumps(listing["blocks"])
    assert "docs for the new runner" in shown and "vpn trouble" not in shown
    with bot.db.session() as s:
        assert {r.user_id for r in s.exec(select(Reporter)).all()} == {USER, "U0OTHER001"}


async def test_markup_and_emoji_survive_the_round_trip(bot):
    # Slack escapes &, < and > in command text, and sends mentions as tokens.
    resp = await bot.post(*slash_command("build &lt;main&gt; fails for <@U0ALICE01> & me :fire: 🚀 ünïcode", fake_url=bot.fake.url))
    await bot.settle()
    [point] = points(bot.db)
    assert point.text == "build <main> fails for <@U0ALICE01> & me :fire: 🚀 ünïcode"
    shown = resp.json()["blocks"][0]["text"]["text"]
    # Shown as text: the mention reads as @U0ALICE01 and notifies nobody (issue #14).
    assert "build &lt;main&gt; fails for @U0ALICE01 &amp; me :fire: 🚀 ünïcode" in shown


async def test_bad_or_stale_signature_gets_401_and_stores_nothing(bot):
    body, headers = slash_command("this should never be stored", fake_url=bot.fake.url)
    bad = dict(headers, **{"x-slack-signature": "v0=" + "0" * 64})
    assert (await bot.post(body, bad)).status_code == 401
    stale_body, stale = slash_command("neither should this", fake_url=bot.fake.url, timestamp=1_600_000_000)
    assert (await bot.post(stale_body, stale)).status_code == 401
    wrong_secret = slash_command("nor this", fake_url=bot.fake.url, secret="another-secret-entirely")
    assert (await bot.post(*wrong_secret)).status_code == 401
    await bot.settle()
    assert points(bot.db) == []
    assert bot.fake.calls == []


async def test_database_down_tells_the_user_to_try_again_with_their_text(bot):
    bot.deps.db.engine.dispose()
    bot.deps.db.engine = __import__("storage.database", fromlist=["make_engine"]).make_engine(
        "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"
    )
    resp = await bot.post(*slash_command("my text must not be lost", fake_url=bot.fake.url))
    answer = resp.json()  # the ack says it, so nothing was acked as if kept
    assert "try again" in answer["text"] and "my text must not be lost" in answer["text"]


async def test_a_report_whose_commit_reply_was_lost_is_answered_with_its_reference_and_filed_once(bot, monkeypatch):
    """The connection dropped while COMMIT's reply was on its way (a proxy delaying PostgreSQL's
    replies, cut at random): the report was written, and the answer was "couldn't save, try again",
    whose resend files it twice. Now the write is repeated (its intake key finds it) and the answer
    is its reference; if the database stays away, the answer says it may be saved and where to look."""
    from bot.intake import listeners
    from storage.database import DatabaseUnavailable, OutcomeUnknown

    real, lost = bot.deps.db.run_within, {"times": 1}

    async def reply_lost(seconds, fn, /, *args, **kwargs):
        result = await real(seconds, fn, *args, **kwargs)  # written ...
        if lost["times"] and fn.__name__ == "file_report":
            lost["times"] -= 1
            raise OutcomeUnknown("at commit: server closed the connection unexpectedly")  # ... and the reply lost
        return result

    monkeypatch.setattr(bot.deps.db, "run_within", reply_lost)
    answer = (await bot.post(*slash_command("the deploy bot ignores my PR", fake_url=bot.fake.url))).json()["text"]
    assert "FB-1" in answer and "try again" not in answer, answer
    assert [p.text for p in points(bot.db)] == ["the deploy bot ignores my PR"]

    lost["times"] = 10**6  # the database gone for longer than the answer may wait
    monkeypatch.setattr(listeners, "ANSWERED_SECONDS", 1.0)
    answer = (await bot.post(*slash_command("and the cache is cold", fake_url=bot.fake.url))).json()["text"]
    assert "can't tell whether it was saved" in answer and "/platform-feedback mine" in answer and "and the cache is cold" in answer
    assert "try again" not in answer, answer
    await bot.settle()
    assert sorted(p.text for p in points(bot.db)) == ["and the cache is cold", "the deploy bot ignores my PR"]  # once each

    lost["times"], refused = 1, {"on": False}  # the reply lost, then the database refusing: still not "not saved"

    async def then_refused(seconds, fn, /, *args, **kwargs):
        if refused["on"] and fn.__name__ == "file_report":
            raise DatabaseUnavailable("connection refused")
        refused["on"] = fn.__name__ == "file_report"
        return await reply_lost(seconds, fn, *args, **kwargs)

    monkeypatch.setattr(bot.deps.db, "run_within", then_refused)
    answer = (await bot.post(*slash_command("the runners are gone", fake_url=bot.fake.url))).json()["text"]
    assert "can't tell whether it was saved" in answer and "try again" not in answer, answer


def test_help_lists_every_registered_subcommand(tmp_path):
    # One registry (issue #25, 6): every word a surface answers is in the help, with hosts' words apart,
    # and DMing the bot is named; a word with no handler, or a handler with no word, stops the start.
    from bot.commands import OTHER_SUBCOMMANDS, SUBCOMMANDS, check_handled
    from bot.intake.blocks import build_usage

    text = build_usage("ticket", prefix="PLAT")["text"]
    for command in SUBCOMMANDS:
        assert f"/platform-feedback {command.name}" in text, command.name
    for word in ("survey", "changelog", "focus", "ask"):
        assert f"`/platform-feedback {word}" in text
    assert "direct message" in text and "PLAT-12" in text and "FB-12" not in text
    assert text.index("*Hosts*") < text.index("/platform-feedback queue")
    check_handled(set(OTHER_SUBCOMMANDS))
    with pytest.raises(RuntimeError, match="without a handler: \\['queue'\\]"):
        check_handled(OTHER_SUBCOMMANDS - {"queue"})
