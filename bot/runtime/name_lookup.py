"""``platform-feedback check`` on a policy that names channels, people or user groups by name
(``#platform-triage``, ``@alice``, ``@platform-team``) where Slack ids belong: each name is looked up
through the Web API and the line says which id to write instead.

Methods (https://api.slack.com/methods): ``conversations.list`` (``types=public_channel,private_channel``,
``exclude_archived``; cursor paging; scopes ``channels:read``, ``groups:read``: private channels only
where the bot is a member), ``users.list`` (``name``, ``profile.display_name``, ``profile.real_name``;
``users:read``), ``usergroups.list`` (``handle``, ``name``; ``usergroups:read``). All in manifest.yml.
Names are compared without case and without a leading ``#``/``@``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from pydantic import ValidationError

from bot.runtime.check import Line, _call
from bot.runtime.config_errors import _where

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient

PAGES = 50  # at most this many pages of 1,000 (channels) or 200 (people) are read


@dataclass(frozen=True)
class Name:
    where: str  # the key path, e.g. triage.channel
    kind: str  # channel, user, usergroup (bot.slack_ids.KINDS)
    written: str  # as in the file, e.g. "#platform-triage"
    name: str  # without # or @


def names_in(path: Path | None) -> list[Name]:
    """Every name written where the policy wants an id (empty: none, or the file does not parse)."""
    from bot.policy import Policy

    if path is None:
        return []
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        Policy.model_validate(raw or {})
    except (OSError, yaml.YAMLError):
        return []
    except ValidationError as exc:
        return [Name(_where(e["loc"], raw), e["ctx"]["kind"], e["ctx"]["written"], e["ctx"]["name"])
                for e in exc.errors() if e["type"] == "slack_name"]
    return []


async def _pages(client: AsyncWebClient, method: str, key: str, **params) -> list[dict]:
    items, cursor = [], ""
    for _ in range(PAGES):
        data, _headers = await _call(client, method, **params, **({"cursor": cursor} if cursor else {}))
        if not data.get("ok"):
            raise LookupError(data.get("error", "unknown_error"))
        items += data.get(key, [])
        cursor = (data.get("response_metadata") or {}).get("next_cursor") or ""
        if not cursor:
            break
    return items


async def resolve(client: AsyncWebClient, names: list[Name]) -> list[Line]:
    """One ✗ line per name: the id to write instead, or why it could not be found."""
    found: dict[str, dict[str, list[str]]] = {}  # kind -> lower-case name -> ids
    lines = []
    for kind in sorted({n.kind for n in names}):
        try:
            found[kind] = await _directory(client, kind)
        except LookupError as exc:
            lines += [Line("block", f"{n.where}: {n.written!r} is a name, and Slack would not list {kind}s ({exc}): "
                                    "write the id instead") for n in names if n.kind == kind]
    for n in names:
        if n.kind not in found:
            continue
        ids = found[n.kind].get(n.name.lower(), [])
        if len(ids) == 1:
            lines.append(Line("block", f"{n.where}: {n.written!r} is {ids[0]}: write {ids[0]} there instead of the name"))
        elif ids:
            lines.append(Line("block", f"{n.where}: {n.written!r} names {len(ids)} {n.kind}s ({', '.join(ids)}): write the one you mean"))
        else:
            hint = " (a private channel: invite the bot first)" if n.kind == "channel" else ""
            lines.append(Line("block", f"{n.where}: no {n.kind} named {n.written!r} the bot can see{hint}: write its id"))
    return lines


async def _directory(client: AsyncWebClient, kind: str) -> dict[str, list[str]]:
    by_name: dict[str, list[str]] = {}

    def add(name: str | None, item_id: str) -> None:
        if name and item_id not in by_name.setdefault(name.lower(), []):
            by_name[name.lower()].append(item_id)

    if kind == "channel":
        for c in await _pages(client, "conversations.list", "channels", types="public_channel,private_channel",
                              exclude_archived="true", limit=1000):
            add(c.get("name"), c["id"])
    elif kind == "user":
        for u in await _pages(client, "users.list", "members", limit=200):
            if u.get("deleted") or u.get("is_bot"):
                continue
            profile = u.get("profile") or {}
            for name in (u.get("name"), profile.get("display_name"), profile.get("real_name")):
                add(name, u["id"])
    else:
        for g in await _pages(client, "usergroups.list", "usergroups"):
            add(g.get("handle"), g["id"])
            add(g.get("name"), g["id"])
    return by_name
