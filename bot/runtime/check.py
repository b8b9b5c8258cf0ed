"""``platform-feedback check``, and the token check ``serve`` runs at start.

``check`` asks Slack about everything the settings and team policy name, one line per item: ✓, or
what to do (✗ blocks: the command exits 1; ! is worth a look). The Web API methods and error codes
are Slack's (https://api.slack.com/methods: auth.test, conversations.info, users.info,
usergroups.users.list, apps.connections.open); the granted scopes come in every answer's
``X-OAuth-Scopes`` header (https://api.slack.com/authentication/oauth-v2, "Using token").
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
from slack_sdk.errors import SlackApiError

from bot.policy import Policy
from bot.runtime.config import DEFAULT_POLICY_FILE
from bot.runtime.settings import Settings

if TYPE_CHECKING:  # imported where used: `report` and the other offline commands need none of it
    from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

# auth.test / apps.connections.open errors that no retry will cure: the token is wrong or gone.
FATAL_TOKEN_ERRORS = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
                      "not_allowed_token_type", "no_permission"}
NETWORK_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)
TIMEOUT_SECONDS = 10


class TokenRejected(Exception):
    """Slack refused the token (an error code in FATAL_TOKEN_ERRORS). ``str()``: one line for the operator."""


class SlackUnreachable(Exception):
    """No answer from Slack (network error, timeout, or an answer that is not Slack's)."""


@dataclass(frozen=True)
class Line:
    status: str  # "ok" (✓), "block" (✗: check exits 1), "warn" (!)
    text: str

    def __str__(self) -> str:
        return {"ok": "✓", "block": "✗", "warn": "!"}[self.status] + " " + self.text


# ---------------------------------------------------------------- start-up


async def _call(client: AsyncWebClient, method: str, **params) -> tuple[dict, dict]:
    """One Web API call -> (the answer's data, its headers). Raises SlackUnreachable on a network
    error or a non-Slack answer (5xx page); Slack's ``ok: false`` comes back as data."""
    try:
        response = await client.api_call(method, params=params)
    except SlackApiError as exc:
        data = exc.response.data if isinstance(exc.response.data, dict) else {}
        if "error" not in data:
            raise SlackUnreachable(f"HTTP {exc.response.status_code} from {client.base_url}") from None
        return data, dict(exc.response.headers or {})
    except NETWORK_ERRORS as exc:
        raise SlackUnreachable(f"{type(exc).__name__}: {exc}".rstrip(": ") + f" ({client.base_url})") from None
    if not isinstance(response.data, dict):  # slack_sdk's bytes or text for a non-JSON body: not Slack's Web API
        raise SlackUnreachable(f"HTTP {response.status_code} without JSON from {client.base_url}")
    return response.data, dict(response.headers or {})


async def auth_test(client: AsyncWebClient, *, setting: str = "SLACK_BOT_TOKEN") -> tuple[dict, dict]:
    """auth.test -> (its answer, headers). Raises TokenRejected (one line naming ``setting``) or SlackUnreachable."""
    data, headers = await _call(client, "auth.test")
    _refused(data, "auth.test", f"{setting} was refused by Slack ({{error}}): copy the Bot User OAuth Token (xoxb-...) "
             "from your app's OAuth & Permissions page, after installing the app")
    return data, headers


def _refused(data: dict, method: str, what_to_do: str) -> None:
    """Raise TokenRejected (``what_to_do`` with ``{error}`` filled) for a refused token, SlackUnreachable
    for any other error of ``method``; nothing for an ok answer."""
    if data.get("ok"):
        return
    error = data.get("error", "unknown_error")
    if error in FATAL_TOKEN_ERRORS:
        raise TokenRejected(what_to_do.format(error=error))
    raise SlackUnreachable(f"{method} answered {error}")


async def app_token_check(app_token: str, api_url: str) -> None:
    """apps.connections.open with the app-level token, as Socket Mode does first. Raises TokenRejected
    (one line) or SlackUnreachable."""
    from slack_sdk.web.async_client import AsyncWebClient

    # No retry handlers: the caller's back-off is the one retry, with one line per try.
    client = AsyncWebClient(token=app_token, base_url=api_url, timeout=TIMEOUT_SECONDS, retry_handlers=[])
    data, _ = await _call(client, "apps.connections.open")
    _refused(data, "apps.connections.open", "SLACK_APP_TOKEN was refused by Slack ({error}): make an app-level token with the "
             "connections:write scope under Basic Information > App-Level Tokens (xapp-...)")


def policy_file(configured: Path | None) -> Path | None:
    """The policy file ``load_policy`` reads: CONFIG_FILE, else ./platform-feedback.yml if present, else None."""
    if configured is not None:
        return configured
    default = Path(DEFAULT_POLICY_FILE)
    return default if default.exists() else None


def policy_summary(policy: Policy, source: Path | None) -> tuple[str, list[str]]:
    """The one line ``serve`` logs about the policy it loaded, and its warnings."""
    where = f"policy from {source}" if source else f"no policy file (no CONFIG_FILE, no ./{DEFAULT_POLICY_FILE}): the defaults"
    hosts = len(policy.hosts.users) + (1 if policy.hosts.usergroup else 0)
    summary = (f"{where}: {len(policy.hosts.users)} host(s){' + group ' + policy.hosts.usergroup if policy.hosts.usergroup else ''}, "
               f"triage channel {policy.triage.channel or 'none'}, {len(policy.taxonomy.categories)} areas, "
               f"{len(policy.office_hours.sessions)} office-hours session(s), {len(policy.surveys)} survey(s), "
               f"announce {policy.closing.announce}")
    warnings = []
    if not hosts:
        warnings.append("no hosts (hosts.users / hosts.usergroup): nobody can triage, assign or resolve reports")
    if not policy.triage.channel:
        warnings.append("no triage channel (triage.channel): new reports are stored but no host is told of them")
    return summary, warnings


# ---------------------------------------------------------------- platform-feedback check


def posting_channels(policy: Policy) -> dict[str, str]:
    """Channel id -> the first setting naming it, for every channel the bot posts in or listens to
    (it must be a member: the manifest has no chat:write.public, and events come only from its channels)."""
    named: dict[str, str] = {}
    candidates = [("triage.channel", policy.triage.channel), ("help_channel.channel", policy.help_channel.channel),
                  ("closing.announce_channel", policy.closing.announce_channel),
                  ("insight.digest_channel", policy.insight.digest_channel)]
    candidates += [(f"office_hours.sessions[{i}].channel", s.channel) for i, s in enumerate(policy.office_hours.sessions)]
    candidates += [(f"surveys[{s.name}].results_channel", s.results_channel) for s in policy.surveys]
    for setting, channel in candidates:
        if channel:
            named.setdefault(channel, setting)
    return named


async def check(settings: Settings, policy: Policy, client: AsyncWebClient, source: Path | None) -> list[Line]:
    """Every line of ``platform-feedback check``, in order: token, scopes, channels, people, user groups, trackers."""
    from bot import examples

    lines = [Line("ok", f"policy: {source}") if source else
             Line("warn", f"no policy file: run `platform-feedback init` to write the commented example here as "
                          f"{DEFAULT_POLICY_FILE} (it is also at {examples.path(examples.POLICY)}), or set CONFIG_FILE; then fill it")]
    try:
        me, headers = await auth_test(client)
    except TokenRejected as exc:
        return [*lines, Line("block", str(exc))]
    except SlackUnreachable as exc:
        return [*lines, Line("block", f"Slack cannot be reached ({exc}): check the network or SLACK_API_URL")]
    lines.append(Line("ok", f"token: bot {me.get('user_id')} in workspace {me.get('team_id')} ({me.get('url', '')})"))
    lines.append(_scopes(headers))
    if settings.slack_app_token is not None:  # Socket Mode (settings.socket_mode)
        lines.append(await _app_token(settings.slack_app_token, settings.slack_api_url))
    for channel, setting in posting_channels(policy).items():
        lines.append(await _channel(client, channel, setting, member=True))
    audience = {c: f"surveys[{s.name}].audience.channels" for s in policy.surveys for c in s.audience.channels}
    for channel, setting in audience.items():
        if channel not in posting_channels(policy):
            lines.append(await _channel(client, channel, setting, member=False))
    users = {u: "hosts.users" for u in policy.hosts.users} | {u: "office_hours.rotation" for u in policy.office_hours.rotation}
    for user, setting in users.items():
        lines.append(await _user(client, user, setting))
    groups = {policy.hosts.usergroup: "hosts.usergroup"} if policy.hosts.usergroup else {}
    for s in policy.surveys:
        groups.update({g: f"surveys[{s.name}].audience.usergroups" for g in s.audience.usergroups if g not in groups})
        groups.update({g: f"surveys[{s.name}].segment_usergroups" for g in s.segment_usergroups if g not in groups})
    for group, setting in groups.items():
        lines.append(await _usergroup(client, group, setting))
    if not policy.hosts.users and not policy.hosts.usergroup:
        lines.append(Line("block", "hosts: none set: add hosts.users (U...) or hosts.usergroup (S...) to the policy, or nobody can triage"))
    if policy.closing.announce != "off" and not policy.closing.announce_channel:
        lines.append(Line("warn", f"closing.announce is {policy.closing.announce} but closing.announce_channel is not set: "
                                  "no \"you said, we did\" posts"))
    if not policy.triage.channel:
        lines.append(Line("block", "triage.channel: not set: add the channel (C...) where hosts see new reports"))
    from bot.issue_create.check import project_lines  # issue #28: can the token create issues in each project

    return lines + trackers(settings, policy) + [Line(level, text) for level, text in await project_lines(settings, policy)]


async def _app_token(app_token: str, api_url: str) -> Line:
    """Socket Mode: ask Slack for a connection with the app-level token, as ``serve`` will."""
    try:
        await app_token_check(app_token, api_url)
    except TokenRejected as exc:
        return Line("block", str(exc))
    except SlackUnreachable as exc:
        return Line("block", f"SLACK_APP_TOKEN: Slack did not open a Socket Mode connection ({exc}): check the token's "
                             "connections:write scope and that Socket Mode is on in the app's settings")
    return Line("ok", "SLACK_APP_TOKEN: Slack opens Socket Mode connections for it")


def _scopes(headers: dict) -> Line:
    from bot.runtime.workspaces import BOT_SCOPES

    granted = {s.strip() for s in {k.lower(): v for k, v in headers.items()}.get("x-oauth-scopes", "").split(",") if s.strip()}
    missing = [s for s in BOT_SCOPES if s not in granted]
    how = "add them under OAuth & Permissions > Bot Token Scopes (or recreate the app from manifest.yml), then reinstall the app"
    if set(missing) - {EMAIL_SCOPE}:
        return Line("block", f"scopes: missing {', '.join(missing)}: {how}")
    if missing:  # an app made before usage events: everything works but resolving an event's email
        return Line("warn", f"scopes: missing {EMAIL_SCOPE}: usage events that name a person by email (not a Slack id) "
                            f"are stored without a person until it is added: {how}")
    return Line("ok", f"scopes: all {len(BOT_SCOPES)} of manifest.yml's")


EMAIL_SCOPE = "users:read.email"  # users.lookupByEmail, for usage events only (bot.usage.settling)


async def _channel(client: AsyncWebClient, channel: str, setting: str, *, member: bool) -> Line:
    data, _ = await _call(client, "conversations.info", channel=channel)
    if not data.get("ok"):
        hint = "or it is private and the bot is not in it: invite the bot there" if data.get("error") == "channel_not_found" else ""
        return Line("block", f"{setting} {channel}: {data.get('error')}: check the id (channel details > About, at the bottom) {hint}".rstrip())
    info = data["channel"]
    name = f"#{info.get('name', channel)}"
    if info.get("is_archived"):
        return Line("block", f"{setting} {channel} ({name}): archived: name a live channel")
    if (member or info.get("is_private")) and not info.get("is_member"):
        return Line("block", f"{setting} {channel} ({name}): the bot is not a member: type /invite @platform-feedback in {name}")
    return Line("ok", f"{setting} {channel} ({name})" + (": the bot is a member" if info.get("is_member") else ""))


async def _user(client: AsyncWebClient, user: str, setting: str) -> Line:
    data, _ = await _call(client, "users.info", user=user)
    if not data.get("ok"):
        return Line("block", f"{setting} {user}: {data.get('error')}: check the id (the person's profile > ⋮ > Copy member ID)")
    if data["user"].get("deleted"):
        return Line("block", f"{setting} {user}: the account is deactivated: remove it from the policy")
    return Line("ok", f"{setting} {user} (@{data['user'].get('name', user)})")


async def _usergroup(client: AsyncWebClient, group: str, setting: str) -> Line:
    data, _ = await _call(client, "usergroups.users.list", usergroup=group)
    if not data.get("ok"):
        return Line("block", f"{setting} {group}: unknown user group ({data.get('error')}): check the id "
                             "(People > User groups > the group > ⋮ > Copy group ID)")
    return Line("ok", f"{setting} {group}: {len(data.get('users', []))} member(s)")


def trackers(settings: Settings, policy: Policy) -> list[Line]:
    """How closures reach the bot: each tracker's webhook and API credentials, and whether polling is on."""
    webhooks = {"GitHub": settings.github_webhook_secret, "GitLab": settings.gitlab_webhook_token,
                "Jira": settings.jira_webhook_secret, "Linear": settings.linear_webhook_secret}
    apis = {"GitHub": settings.github_token, "GitLab": settings.gitlab_token,
            "Jira": settings.jira_base_url and settings.jira_api_token, "Linear": settings.linear_api_key}
    on = [name for name, secret in webhooks.items() if secret and not settings.socket_mode]
    polled = [name for name, cred in apis.items() if cred] if policy.closing.poll_minutes else []
    lines = [Line("ok", f"{name} webhook: /webhooks/{name.lower()}") for name in on]
    lines += [Line("ok", f"{name} polled every {policy.closing.poll_minutes} min") for name in polled]
    if settings.socket_mode and any(webhooks.values()):
        lines.append(Line("warn", "tracker webhooks need HTTP: in Socket Mode set closing.poll_minutes and the trackers' API tokens"))
    if policy.closing.poll_minutes and not polled:
        lines.append(Line("warn", f"closing.poll_minutes is {policy.closing.poll_minutes} but no tracker API token is set "
                                  "(GITHUB_TOKEN, GITLAB_TOKEN, JIRA_BASE_URL + JIRA_API_TOKEN, LINEAR_API_KEY)"))
    if not on and not polled:
        lines.append(Line("warn", "trackers: no webhook secret and no polling: reporters are not told when linked issues close "
                                  "(set e.g. GITHUB_WEBHOOK_SECRET, or closing.poll_minutes with GITHUB_TOKEN)"))
    return lines
