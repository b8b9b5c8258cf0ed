"""Issue #27, item 4: words separated by something other than an ASCII space. Slack sends the
command text as typed: a Japanese sentence has no spaces at all, an IME types U+3000 between
words, Option-Space on a Mac types U+00A0, and text pasted from documents carries U+2007, U+202F or
a zero-width space (U+200B). Each is a report (or a subcommand), never "I don't know ...". Through
the real app: signed slash commands, SQLite and PostgreSQL."""

import pytest
from sqlmodel import select

from bot.policy import Hosts, Policy, Triage
from storage.models import FrictionPoint
from tests.slack_requests import slash_command

HOST = "U0HOST0001"


@pytest.fixture
def policy() -> Policy:
    return Policy(hosts=Hosts(users=[HOST]), triage=Triage(channel="C0TRIAGE01"))


def points(db) -> list[FrictionPoint]:
    with db.session() as s:
        return list(s.exec(select(FrictionPoint).order_by(FrictionPoint.id)).all())


async def command(bot, text: str, user: str = "U0DEV00001") -> str:
    resp = await bot.post(*slash_command(text, fake_url=bot.fake.url, user=user))
    assert resp.status_code == 200
    await bot.settle()
    ack = resp.json().get("text", "") if resp.content else ""
    answers = bot.fake.calls_to("response_url")
    return ack or (answers[-1].body.get("text", "") if answers else "")


@pytest.mark.parametrize("text", [
    "ステージングのVPNが一時間ごとに切れます",  # Japanese: no spaces at all
    "VPN\u3000が\u3000切れる",  # ideographic spaces
    "VPN\u00a0drops",  # Option-Space on a Mac
    "VPN\u2007drops\u202fagain",  # figure space, narrow no-break space
    "VPN\u200bdrops",  # zero-width space
    "การ deploy ล้มเหลว",  # Thai, partly spaced
], ids=["japanese", "ideographic-space", "nbsp", "figure-narrow", "zero-width", "thai"])
async def test_a_sentence_in_any_script_or_spacing_is_filed(bot, text):
    answer = await command(bot, text)
    [point] = points(bot.db)
    assert "I don't know" not in answer and f"FB-{point.id}" in answer
    assert point.text == text and point.source == "command"


async def test_a_single_latin_word_is_still_a_typo(bot):
    assert "I don't know `lsit`" in await command(bot, "lsit")
    assert points(bot.db) == []


@pytest.mark.parametrize("space", ["\u00a0", "\u3000", "\u200b", "\u2007", "\u202f", "\t"])
async def test_a_hosts_resolve_with_any_separator_resolves(bot, space):
    await command(bot, "the staging VPN drops every hour")
    [point] = points(bot.db)
    answer = await command(bot, f"resolve{space}FB-{point.id}{space}fixed in 2.3", user=HOST)
    assert f"Resolved FB-{point.id}" in answer
    [point] = points(bot.db)  # nothing new filed
    assert point.status == "resolved" and point.resolution_note == "fixed in 2.3"
