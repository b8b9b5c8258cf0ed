"""Requests as Slack sends them: real payload shapes, signed with the v0 scheme."""

import json
import time
import uuid
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

from tests.fake_slack import TEAM

SIGNING_SECRET = "test-signing-secret-0123456789"
USER = "U0DEV00001"
CHANNEL = "C0GENERAL1"
APP_ID = "A0APP00001"


def signed(body: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None, content_type: str) -> dict:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {
        "content-type": content_type,
        "x-slack-request-timestamp": ts,
        "x-slack-signature": signature,
    }


def form(body: str, **kw) -> tuple[str, dict]:
    return body, signed(body, content_type="application/x-www-form-urlencoded", **kw)


def slash_command(text: str, *, fake_url: str, user: str = USER, channel: str = CHANNEL, team: str = TEAM,
                  enterprise: str | None = None, org_install: bool = False, **kw) -> tuple[str, dict]:
    grid = {"enterprise_id": enterprise, "enterprise_name": f"Org {enterprise}"} if enterprise else {}
    body = urlencode(
        {
            "token": "legacy-verification-token",
            **grid,
            "team_id": team,
            "team_domain": "example",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": "dev",
            "command": "/platform-feedback",
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "true" if org_install else "false",
            "response_url": f"{fake_url}/response_url/{uuid.uuid4().hex}",
            "trigger_id": f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex[:32]}",
        }
    )
    return form(body, **kw)


def interactive(payload: dict, **kw) -> tuple[str, dict]:
    return form(urlencode({"payload": json.dumps(payload)}), **kw)


def _user(user: str) -> dict:
    return {"id": user, "username": "dev", "name": "dev", "team_id": TEAM}


def message_shortcut(*, message_text: str, message_ts: str, channel: str = CHANNEL, user: str = USER, author: str = "UAUTHOR01") -> dict:
    return {
        "type": "message_action",
        "token": "legacy-verification-token",
        "action_ts": f"{time.time():.6f}",
        "team": {"id": TEAM, "domain": "example"},
        "user": _user(user),
        "channel": {"id": channel, "name": "general"},
        "is_enterprise_install": False,
        "enterprise": None,
        "callback_id": "report_friction",
        "trigger_id": f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex[:32]}",
        "response_url": "https://hooks.slack.com/app/T0/1/x",
        "message_ts": message_ts,
        "message": {"type": "message", "user": author, "ts": message_ts, "text": message_text},
    }


def view_submission(view: dict, values: dict, *, user: str = USER, view_id: str | None = None) -> dict:
    """``view`` is what the bot sent in views.open; ``values`` is state.values as Slack fills it."""
    return {
        "type": "view_submission",
        "team": {"id": TEAM, "domain": "example"},
        "user": _user(user),
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "trigger_id": f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex[:32]}",
        "view": {
            "id": view_id or f"V{uuid.uuid4().hex[:10].upper()}",
            "team_id": TEAM,
            "type": "modal",
            "blocks": view["blocks"],
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view["callback_id"],
            "state": {"values": values},
            "hash": "1700000000.abcdef",
            "title": view["title"],
            "clear_on_close": False,
            "notify_on_close": False,
            "close": view.get("close"),
            "submit": view.get("submit"),
            "previous_view_id": None,
            "root_view_id": None,
            "app_id": APP_ID,
            "external_id": "",
            "app_installed_team_id": TEAM,
            "bot_id": "B0BOT0001",
        },
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def modal_values(
    text: str | None,
    *,
    categories: list[str] = (),
    severity: str = "medium",
    time_lost: str | None = None,
    kind: str = "feedback",
    link: str | None = None,
) -> dict:
    """state.values for the report modal, in the shape Slack sends per element type."""

    def opt(value):
        return {"text": {"type": "plain_text", "text": value, "emoji": True}, "value": value}

    return {
        "text": {"text_input": {"type": "plain_text_input", "value": text}},
        "categories": {"categories_select": {"type": "multi_static_select", "selected_options": [opt(c) for c in categories]}},
        "severity": {"severity_select": {"type": "static_select", "selected_option": opt(severity)}},
        "time_lost": {"time_lost_select": {"type": "static_select", "selected_option": opt(time_lost) if time_lost else None}},
        "kind": {"kind_radio": {"type": "radio_buttons", "selected_option": opt(kind)}},
        "link": {"link_input": {"type": "url_text_input", "value": link}},
    }


def block_action(action_id: str, value: str, *, user: str = USER, response_url: str, channel: str = CHANNEL) -> dict:
    return {
        "type": "block_actions",
        "user": _user(user),
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": channel, "is_ephemeral": True},
        "trigger_id": f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex[:32]}",
        "team": {"id": TEAM, "domain": "example"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": "general"},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": "filed_actions",
                "text": {"type": "plain_text", "text": "Add details", "emoji": True},
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def event_callback(event: dict, *, event_id: str | None = None, retry_num: int | None = None, team: str = TEAM,
                   **kw) -> tuple[str, dict]:
    body = json.dumps(
        {
            "token": "legacy-verification-token",
            "team_id": team,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()),
            "authorizations": [{"enterprise_id": None, "team_id": team, "user_id": "UBOT00001", "is_bot": True, "is_enterprise_install": False}],
            "is_ext_shared_channel": False,
            "event_context": "4-eyJldCI6InJlYWN0aW9uX2FkZGVkIn0",
        }
    )
    headers = signed(body, content_type="application/json", **kw)
    if retry_num:
        headers |= {"x-slack-retry-num": str(retry_num), "x-slack-retry-reason": "http_timeout"}
    return body, headers


def reaction_added(*, channel: str, ts: str, user: str = USER, reaction: str = "ticket", item_user: str = "UAUTHOR01") -> dict:
    return {
        "type": "reaction_added",
        "user": user,
        "reaction": reaction,
        "item_user": item_user,
        "item": {"type": "message", "channel": channel, "ts": ts},
        "event_ts": f"{time.time():.6f}",
    }


def app_home_opened(*, user: str = USER) -> dict:
    return {"type": "app_home_opened", "user": user, "channel": "D0HOME0001", "tab": "home", "event_ts": f"{time.time():.6f}"}


def element_action(element: dict, **chosen) -> dict:
    """One entry of ``actions`` as Slack sends it for ``element`` (a dict the bot rendered),
    with the user's choice: ``value`` for buttons, ``selected_user``, ``selected_option``,
    ``selected_options``."""
    action = {"type": element["type"], "action_id": element["action_id"], "action_ts": f"{time.time():.6f}"}
    if element["type"] == "button":
        action |= {"text": element["text"], "value": element.get("value", "")}
    return action | chosen


def block_actions(actions: list[dict], *, block_id: str, user: str = USER, response_url: str, channel: str = CHANNEL,
                  message_ts: str = "1700000000.000100", view: dict | None = None, team: str = TEAM,
                  enterprise: str | None = None, org_install: bool = False) -> dict:
    """A ``block_actions`` payload from a message (default) or from a Home tab ``view``; ``team``,
    ``enterprise`` and ``org_install`` say where it came from (Enterprise Grid: an org-wide install)."""
    payload = {
        "type": "block_actions",
        "user": {**_user(user), "team_id": team},
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "trigger_id": f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex[:32]}",
        "team": {"id": team, "domain": "example"},
        "enterprise": {"id": enterprise, "name": f"Org {enterprise}"} if enterprise else None,
        "is_enterprise_install": org_install,
        "actions": [a | {"block_id": block_id} for a in actions],
    }
    if view is not None:
        return payload | {"container": {"type": "view", "view_id": view.get("id", "V0HOME0001")}, "view": view}
    return payload | {
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False},
        "channel": {"id": channel, "name": "triage"},
        "message": {"type": "message", "ts": message_ts, "text": "card"},
        "state": {"values": {}},
        "response_url": response_url,
    }
