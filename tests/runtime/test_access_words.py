"""Issue #26 item 8: one access rule for people's words (``bot.runtime.access``): the hosts, and
the people who reported it. Through the real app, on SQLite and PostgreSQL: every registered
subcommand and every registered action, pressed with many values, by a non-host of each allowed
workspace, shows no one else's words, neither a channel report's nor what someone told the bot
in a private DM; a host sees them (so the walk would have found them)."""

import inspect
import json
import re

import pytest

from bot.policy import Closing, Focus, Hosts, Policy, Survey, Triage
from bot.runtime.app import create_app
from storage.models import ClosureNotice, TrackerLink
from tests.conftest import make_settings
from tests.direct_messages.test_direct_messages import dm
from tests.slack_requests import app_home_opened, block_actions, event_callback, interactive, slash_command

HOST, ALICE, LEAD = "U0HOST0001", "U0ALICE001", "U0LEAD0001"
HOME_TEAM, OTHER_TEAM = "T0TEAM001", "T0OTHER01"
STRANGERS = [("U0MALLORY1", HOME_TEAM), ("U0MALLORY2", OTHER_TEAM), (LEAD, HOME_TEAM)]
CHANNEL_SECRET, DM_SECRET = "QUIETCHANNELWORDS", "PRIVATEDMWORDS"
VALUES = ["1", "2", "report:1", "report:2", "1|fix|3", "1|3"]
ARGS = ["", "2", "FB-1", "publish", "report", "results pulse", "FB-2 done"]


@pytest.fixture
def policy() -> Policy:
    survey = Survey.model_validate({"name": "pulse", "questions": [{"id": "fix", "kind": "text", "text": "Fix next?"}],
                                    "audience": {"channels": ["C0ENG00001"]}})
    return Policy(hosts=Hosts(users=[HOST]), triage=Triage(channel="C0TRIAGE01"), focus=Focus(leads=[LEAD]),
                  closing=Closing(announce_channel="C0ANNOUNCE"), surveys=[survey])


@pytest.fixture
def settings_overrides() -> dict:
    return {"allowed_workspaces": f"{HOME_TEAM},{OTHER_TEAM}"}


def registered_action_ids(app) -> set[str]:
    """Every ``@app.action`` id of the app, read from Bolt's own listener matchers (a regex id is
    given as its pattern)."""
    ids = set()
    for listener in app._async_listeners:
        for matcher in listener.matchers:
            outer = inspect.getclosurevars(matcher.func).nonlocals.get("func") if hasattr(matcher, "func") else None
            if outer is None or not outer.__qualname__.startswith("action."):
                continue
            constraints = inspect.getclosurevars(outer).nonlocals["constraints"]
            action_id = constraints if isinstance(constraints, (str, re.Pattern)) else constraints.get("action_id")
            ids.add(action_id.pattern if isinstance(action_id, re.Pattern) else action_id)
    return ids


def concrete(action_id: str) -> str:
    """An id Slack would send for a registered id or pattern (``^survey_answer:`` → ``survey_answer:3``)."""
    return action_id.lstrip("^").rstrip("$") + ("3" if action_id.endswith(":") else "")


async def seed(bot) -> None:
    """Alice reports in a channel (FB-1) and in a private DM (FB-2); the host picks and publishes
    both into the focus; FB-1's issue closed as fixed (so the changelog lists it)."""
    await bot.post(*slash_command(f"{CHANNEL_SECRET} the build cache is broken", fake_url=bot.fake.url, user=ALICE))
    await bot.post(*event_callback(dm(f"{DM_SECRET} my salary slip is wrong", user=ALICE, channel="D0ALICE001")))
    await bot.drain()
    for value in ("report:1", "report:2"):
        await bot.post(*interactive(block_actions([{"type": "button", "action_id": "focus_pick", "value": value}],
                                                  block_id="b", user=HOST, response_url=f"{bot.fake.url}/response_url/pick")))
    await bot.drain()
    with bot.db.session() as s:
        s.add(TrackerLink(friction_point_id=1, tracker="github", key="acme/app#1", url="https://github.com/acme/app/issues/1"))
        s.add(ClosureNotice(friction_point_id=1, user_id=ALICE, tracker="github", key="acme/app#1", closure=1, outcome="fixed"))
        s.commit()


async def shown_to(bot, user: str, team: str, *, commands, actions) -> str:
    """Everything the bot said (acks, responses, posts, views) while ``user`` of ``team`` ran
    ``commands`` (with every argument in ARGS) and pressed ``actions`` (with every value in VALUES)."""
    start = len(bot.fake.calls)
    said = []
    for name in commands:
        for arg in ARGS:
            response = await bot.post(*slash_command(f"{name} {arg}".strip(), fake_url=bot.fake.url, user=user, team=team))
            said.append(response.text)
    for action_id in actions:
        for value in VALUES:
            payload = block_actions([{"type": "button", "action_id": action_id, "value": value, "text": {"type": "plain_text", "text": "x"}}],
                                    block_id="b", user=user, team=team, response_url=f"{bot.fake.url}/response_url/walk")
            response = await bot.post(*interactive(payload))
            said.append(response.text)
    await bot.post(*event_callback(app_home_opened(user=user), team=team))
    await bot.drain()
    return "\n".join(said) + json.dumps([c.body for c in bot.fake.calls[start:] if to_reader(c, user)], default=str)


def to_reader(call, user: str) -> bool:
    """Whether ``call`` shows something to ``user``: an answer to their request, a view they
    opened, their Home tab, an ephemeral or a DM to them. (A lead's *Publish* sends the focus
    announcement to its channel: a publication the policy lets leads make, not a read.)"""
    body = call.body if isinstance(call.body, dict) else {}
    if call.method in ("response_url", "views.open", "views.push", "views.update"):
        return True
    if call.method == "views.publish":
        return body.get("user_id") == user
    if call.method == "chat.postEphemeral":
        return body.get("user") == user
    if call.method in ("chat.postMessage", "chat.update"):
        return body.get("channel") == user
    return False


async def test_no_one_but_hosts_and_reporters_sees_a_report_s_words(bot, policy, settings_overrides):
    await seed(bot)
    # The surfaces the walk must cover: every subcommand, the built-in ones, and every registered action.
    commands = sorted(bot.deps.commands) + ["mine", "help"]
    app, _deps = create_app(make_settings(bot.fake, bot.db, **settings_overrides), policy, bot.db)  # the same registrations
    actions = sorted(concrete(a) for a in registered_action_ids(app))
    assert {"focus", "top", "changelog", "queue", "survey", "surveys"} <= set(commands)
    assert {"focus_pick", "focus_publish", "triage_reopen", "home_filter_category", "survey_file_comment"} <= set(actions)
    assert len(actions) >= 25

    for user, team in STRANGERS:
        shown = await shown_to(bot, user, team, commands=commands, actions=actions)
        assert "FB-1" in shown  # the walk reached the reports (refs are shown, words are not)
        assert CHANNEL_SECRET not in shown and DM_SECRET not in shown, (user, team)

    # The rule lets the reporter read her own words and the host everyone's: the walk would see them.
    own = await shown_to(bot, ALICE, HOME_TEAM, commands=["focus", "changelog", "mine"], actions=[])
    assert CHANNEL_SECRET in own and DM_SECRET in own
    host = await shown_to(bot, HOST, HOME_TEAM, commands=["focus", "changelog", "top"], actions=[])
    assert CHANNEL_SECRET in host and DM_SECRET in host

