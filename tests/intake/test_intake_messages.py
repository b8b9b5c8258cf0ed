"""Read what people see (#13, item 3): messages as Slack really sends them (tests/fixtures/slack,
see its SOURCES.md), through the one reader and through every intake that reads a message."""

import json
from pathlib import Path

import pytest
from sqlmodel import select

from bot.messages import message_text
from storage.models import FrictionPoint
from tests.fake_slack import TEAM
from tests.slack_requests import event_callback, interactive, reaction_added

FIXTURES = Path(__file__).parents[1] / "fixtures" / "slack"
CHANNEL = "C0HELP0001"


def fixture(path: str) -> dict:
    return json.loads((FIXTURES / path).read_text())


def points(db) -> list[FrictionPoint]:
    with db.session() as s:
        return list(s.exec(select(FrictionPoint).order_by(FrictionPoint.id)).all())


# ------------------------------------------------------------------ the reader


def test_attachments_only_reads_as_the_client_shows_them():
    assert message_text(fixture("messages/attachments_only.json")).split("\n") == [
        "Optional pre-text that appears above the attachment block",
        "author_name",
        "title",
        "Optional `text` that appears within the attachment",
        "A field's title: This field's value",
        "A short field's title: A short field's value",
        "A second short field's title: A second short field's value",
        "footer",
    ]


def test_a_real_github_app_message_reads_its_title_link_as_text_and_url():
    text = message_text(fixture("messages/attachments_only_github_app.json"))
    assert "#2 test issue 2 (https://github.com/myorg/myrepo/issues/2)" in text
    assert "another oneeeee" in text
    assert "[myorg/myrepo] Issue opened by ldub" not in text  # the fallback is not shown when the rest is


def test_fallback_is_read_when_an_attachment_shows_nothing_else():
    message = {"type": "message", "text": "", "attachments": [{"id": 1, "fallback": "[FIRING:1] InstanceDown", "color": "danger"}]}
    assert message_text(message) == "[FIRING:1] InstanceDown"


def test_rich_text_lists_quotes_and_code_read_as_lines():
    lines = message_text(fixture("messages/blocks_rich_text.json")).split("\n")
    assert lines[0] == "#C043YJGBY49 :cat: @U043H11ES4V https://google.com text text text"
    assert "Hey! this is very rich text block test linksSlack website! (https://slack.com)" in lines
    assert lines[2:8] == ["1. a", "2. b", "  1. bb", "    1. BBB", "3. c", "• todo"]
    assert "> this is very important" in lines and 'print("Hello world")' in lines
    assert lines[-1] == "@everyone"  # a broadcast is read as its name, never sent back as <!everyone>


def test_blocks_are_what_is_seen_when_text_is_only_the_notification():
    text = message_text(fixture("messages/blocks_sections.json"))
    assert text.split("\n")[:3] == ["Job Failed. :red_circle:", "*Job*: something", "*Project*: something"]
    assert "*Mentions*: @someone" in text and "Location: **Dogpatch**" in text
    assert "CircleCI job failed." not in text


def test_files_are_named():
    assert message_text(fixture("messages/files_only.json")) == "Files: namenamename.txt"
    with_comment = fixture("messages/files_only.json") | {"text": "the build log &amp; the config"}
    assert message_text(with_comment) == "the build log & the config\nFiles: namenamename.txt"


def test_markup_becomes_plain_text():
    message = {"text": "ping <!here> <@U1> <@U2|bob> in <#C1|general>, see <https://x.example/a?b=1&amp;c=2|the runbook> "
                       "or <mailto:ops@x.example|ops>, on <!date^1392734382^{date}|Feb 18, 2014>, by <!subteam^S1|@oncall> &lt;3"}
    assert message_text(message) == ("ping @here @U1 @bob in #general, see the runbook (https://x.example/a?b=1&c=2) "
                                      "or ops, on Feb 18, 2014, by @oncall <3")


@pytest.mark.parametrize("message", [
    {}, {"text": None}, {"blocks": "x"}, {"blocks": [None, 1, {"type": "rich_text", "elements": [{"type": "rich_text_list"}]}]},
    {"attachments": [{"fields": [{"title": None, "value": 3}]}]}, {"files": [{}]},
    {"blocks": [{"type": "rich_text", "elements": [{"type": "rich_text_section", "elements": [{"type": "date", "timestamp": "x"}]}]}]},
])
def test_odd_shapes_read_as_nothing_rather_than_fail(message):
    assert isinstance(message_text(message), str)


# ------------------------------------------------------------------ every intake uses it


@pytest.mark.parametrize("path, expected", [
    ("messages/attachments_only.json", "A field's title: This field's value"),
    ("messages/attachments_only_github_app.json", "#2 test issue 2 (https://github.com/myorg/myrepo/issues/2)"),
    ("messages/blocks_sections.json", "Job Failed. :red_circle:"),
    ("messages/files_only.json", "Files: namenamename.txt"),
])
async def test_ticket_reaction_files_what_the_message_shows(bot, path, expected):
    message = fixture(path)
    bot.fake.messages[(CHANNEL, message["ts"])] = message
    await bot.post(*event_callback(reaction_added(channel=CHANNEL, ts=message["ts"])))
    await bot.drain()
    [point] = points(bot.db)
    assert expected in point.text and "(a message with no text)" not in point.text


async def test_message_shortcut_prefills_an_attachment_only_message(bot):
    payload = fixture("payloads/message_action.json") | {
        "callback_id": "report_friction", "team": {"id": TEAM, "domain": "example"},
        "user": {"id": "U0DEV00001", "name": "dev", "team_id": TEAM}, "is_enterprise_install": False,
    }
    assert payload["message"]["text"] == ""
    assert (await bot.post(*interactive(payload))).status_code == 200
    await bot.settle()
    [opened] = bot.fake.calls_to("views.open")
    assert opened.body["view"]["blocks"][0]["element"]["initial_value"] == "Choose a channel"


@pytest.fixture
def policy():
    from bot.policy import HelpChannel, Policy

    return Policy(help_channel=HelpChannel(channel=CHANNEL))


async def test_help_channel_question_posted_as_a_file_is_named(bot):
    event = fixture("messages/files_only.json") | {"channel": CHANNEL, "event_ts": "1670631527.874149", "channel_type": "channel"}
    await bot.post(*event_callback(event))
    await bot.drain()
    [point] = points(bot.db)
    assert point.text == "Files: namenamename.txt"
