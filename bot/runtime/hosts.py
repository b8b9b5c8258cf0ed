"""Who may triage: the hosts named in the policy, plus the members of a user group (looked up
through the Web API, cached, refreshed periodically)."""

import asyncio
import logging
import time

from slack_sdk.errors import SlackApiError

from bot.policy import Hosts
from bot.runtime.workspaces import NotInstalled, Workspaces

log = logging.getLogger(__name__)


class HostDirectory:
    def __init__(self, hosts: Hosts, workspaces: Workspaces, *, refresh_seconds: float = 600):
        """The user group is the team policy's workspace's."""
        self.hosts = hosts
        self.workspaces = workspaces
        self.refresh_seconds = refresh_seconds
        self._group: frozenset[str] = frozenset()
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def members(self) -> frozenset[str]:
        return frozenset(self.hosts.users) | await self._group_members()

    async def is_host(self, user_id: str) -> bool:
        return user_id in self.hosts.users or user_id in await self._group_members()

    async def _group_members(self) -> frozenset[str]:
        if not self.hosts.usergroup:
            return frozenset()
        fresh = self._fetched_at is not None and time.monotonic() - self._fetched_at < self.refresh_seconds
        if fresh:
            return self._group
        async with self._lock:
            if self._fetched_at is None or time.monotonic() - self._fetched_at >= self.refresh_seconds:
                try:
                    client = await self.workspaces.client()
                    resp = await client.usergroups_users_list(usergroup=self.hosts.usergroup)
                    self._group = frozenset(resp.get("users") or [])
                except SlackApiError as exc:  # keep the last known members rather than lock everyone out
                    log.warning("could not refresh host group %s: %s", self.hosts.usergroup, exc.response.get("error"))
                except NotInstalled as exc:
                    log.warning("could not refresh host group %s: %s", self.hosts.usergroup, exc)
                self._fetched_at = time.monotonic()
        return self._group
