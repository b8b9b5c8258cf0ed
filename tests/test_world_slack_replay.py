"""Issue #27: the Slack world corpus replayed through the real app. Every payload under
tests/world/slack (Slack's documented examples of message subtypes, events, callbacks, shortcuts and
slash commands, a Workflow Builder post, a Slack Connect member's message) and the vendored
captures under tests/fixtures/slack/{events,payloads} is sent signed, as Slack sends it, to
/slack/events. Slack's semantics are the expectation: never a 4xx or 5xx for a signed delivery, no
traceback in the log, and a report filed exactly when a person asked for one (``ASKED``); nothing
else files anything. On SQLite and PostgreSQL."""

import json
import logging
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlmodel import func, select

from bot.policy import HelpChannel, Hosts, Policy, Triage
from storage.models import FrictionPoint
from tests.slack_requests import signed

ROOT = Path(__file__).parent
WORLD = ROOT / "world" / "slack"
FIXTURES = ROOT / "fixtures" / "slack"
HELP = "C0HELP0001"

# The files in which a person asks for something to be filed: one report each.
ASKED = {
    "events/help_channel_question.json",  # a person's question in the help channel
    "events/help_channel_workflow_form.json",  # a Workflow Builder form posted there
    "events/dm_thread_reply_elsewhere.json",  # a DM to the bot (a thread that is no report's)
    "commands/platform_feedback_japanese.txt",  # a one-line report in Japanese
    "commands/platform_feedback_nbsp.txt",  # words separated by U+00A0
    "fixtures/events/message_im.json",  # Slack's captured message.im
}


def corpus() -> list[tuple[str, Path]]:
    world = [(str(p.relative_to(WORLD)), p) for p in sorted(WORLD.rglob("*")) if p.suffix in (".json", ".txt")]
    fixtures = [(f"fixtures/{p.parent.name}/{p.name}", p) for d in ("events", "payloads") for p in sorted((FIXTURES / d).glob("*.json"))]
    return world + fixtures


@pytest.fixture
def policy() -> Policy:
    return Policy(help_channel=HelpChannel(channel=HELP), hosts=Hosts(users=["U0HOST0001"]), triage=Triage(channel="C0TRIAGE01"))


def request(name: str, path: Path, fake_url: str) -> tuple[str, dict]:
    """The body and signed headers Slack would send for this corpus file."""
    if path.suffix == ".txt":  # a slash command's form body
        body = path.read_text().replace("RESPONSE_URL", f"{fake_url}/response_url/{path.stem}")
        return body, signed(body, content_type="application/x-www-form-urlencoded")
    payload = json.loads(path.read_text())
    if payload.get("type") in ("event_callback", "url_verification", "app_rate_limited"):
        body = json.dumps(payload, ensure_ascii=False)
        return body, signed(body, content_type="application/json")
    if payload.get("response_url"):
        payload["response_url"] = f"{fake_url}/response_url/{path.stem}"
    body = urlencode({"payload": json.dumps(payload, ensure_ascii=False)})  # interactivity: a form with one JSON field
    return body, signed(body, content_type="application/x-www-form-urlencoded")


def filed(db) -> int:
    with db.session() as s:
        return s.exec(select(func.count()).select_from(FrictionPoint)).one()


def test_the_corpus_is_all_there():
    names = {name for name, _ in corpus()}
    assert ASKED <= names and len(names) >= 35


async def test_every_corpus_payload_is_answered_2xx_and_files_only_what_was_asked(bot, caplog):
    outcomes = {}
    with caplog.at_level(logging.WARNING):
        for name, path in corpus():
            before = filed(bot.db)
            resp = await bot.post(*request(name, path, bot.fake.url))
            await bot.drain()
            outcomes[name] = (resp.status_code, filed(bot.db) - before)
    refused = {n: s for n, (s, _) in outcomes.items() if s >= 400}
    assert refused == {}
    assert {n for n, (_, f) in outcomes.items() if f} == ASKED
    assert all(f == 1 for n, (_, f) in outcomes.items() if n in ASKED)
    tracebacks = [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert tracebacks == []


async def test_url_verification_is_answered_with_its_challenge(bot):
    resp = await bot.post(*request("callbacks/url_verification.json", WORLD / "callbacks" / "url_verification.json", bot.fake.url))
    assert resp.status_code == 200 and "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" in resp.text
