"""Checks on manifest.yml: the parts of Slack's manifest schema that can break, plus our ids."""
import json
import os
import re
from pathlib import Path

import pytest
import yaml

MANIFEST = Path(__file__).resolve().parent.parent / "manifest.yml"
SCOPES = {"commands", "chat:write", "reactions:read", "channels:history", "groups:history", "usergroups:read", "files:write",
          "users:read", "users:read.email", "channels:read", "groups:read", "im:history"}


@pytest.fixture(scope="module")
def manifest():
    return yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))


def test_display_information_lengths(manifest):
    info = manifest["display_information"]
    assert 1 <= len(info["name"]) <= 35
    assert 1 <= len(info["description"]) <= 140
    assert 175 <= len(info["long_description"]) <= 4000


def test_slash_command(manifest):
    (cmd,) = manifest["features"]["slash_commands"]
    assert cmd["command"] == "/platform-feedback"
    assert re.match(r"^/", cmd["command"]) and 2 <= len(cmd["command"]) <= 32
    assert cmd["description"] and cmd["should_escape"] is True


def test_message_shortcut(manifest):
    (shortcut,) = manifest["features"]["shortcuts"]
    assert shortcut["type"] == "message"
    assert shortcut["callback_id"] == "report_friction"
    assert 1 <= len(shortcut["name"]) <= 24 and shortcut["description"]


def test_bot_events(manifest):
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    assert sorted(events) == ["app_home_opened", "app_uninstalled", "message.channels", "message.groups", "message.im",
                              "reaction_added", "tokens_revoked"]


def test_each_message_event_has_its_history_scope_and_the_messages_tab_is_writable(manifest):
    """Slack sends message.X only with X:history (https://api.slack.com/events/message.im): a DM the
    bot cannot receive would go unanswered (issue #11 item 8)."""
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    history = {"message.channels": "channels:history", "message.groups": "groups:history", "message.im": "im:history"}
    assert all(history[e] in scopes for e in events if e.startswith("message."))
    home = manifest["features"]["app_home"]
    assert home["messages_tab_enabled"] and not home["messages_tab_read_only_enabled"] and "message.im" in events


def test_bot_scopes_exact(manifest):
    bot = manifest["oauth_config"]["scopes"]["bot"]
    assert len(bot) == len(set(bot)) and set(bot) == SCOPES
    assert "user" not in manifest["oauth_config"]["scopes"]


def test_request_urls_present_and_equal(manifest):
    settings = manifest["settings"]
    assert settings["interactivity"]["is_enabled"] is True
    urls = {
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
        manifest["features"]["slash_commands"][0]["url"],
    }
    assert len(urls) == 1 and re.match(r"^https?://", urls.pop())
    assert settings["socket_mode_enabled"] is False


def test_validates_against_slack_schema(manifest):
    """Slack's own schema: a copy of slackapi/manifest-schema in tests/fixtures/slack/manifest-schema
    (see SOURCES.md), or SLACK_MANIFEST_SCHEMA = a newer checkout of it."""
    root = os.environ.get("SLACK_MANIFEST_SCHEMA") or str(MANIFEST.parent / "tests" / "fixtures" / "slack" / "manifest-schema")
    jsonschema = pytest.importorskip("jsonschema")
    from referencing import Registry, Resource

    root = Path(root)
    schemas = root / "schemas" if (root / "schemas").is_dir() else root
    load = lambda p: json.loads(p.read_text(encoding="utf-8"))  # noqa: E731
    # The dispatcher $refs raw.githubusercontent.com URLs; serve them from disk (no network).
    registry = Registry(retrieve=lambda uri: Resource.from_contents(load(schemas / uri.rsplit("/", 1)[-1])))
    top = root / "manifest.schema.json"
    schema = load(top if top.is_file() else schemas / "manifest.schema.1.0.0.json")
    validator = jsonschema.Draft7Validator(schema, registry=registry)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(manifest)]
    assert not errors, errors
