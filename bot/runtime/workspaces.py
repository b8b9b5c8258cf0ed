"""Which bot token speaks for which workspace.

One workspace: ``SLACK_BOT_TOKEN`` for everything. Several workspaces or an Enterprise Grid org
(``SLACK_CLIENT_ID`` / ``SLACK_CLIENT_SECRET``): each installs the app through Slack's OAuth flow
and slack-sdk's SQLAlchemy installation store keeps its token, in the bot's own database.

The platform team lives in one of them: the team policy's ``workspace`` names it, and its channels,
hosts, office hours and surveys are that workspace's. Every report lands in its triage queue,
wherever it was filed; the people who filed it are answered through their own workspace's
installation (an outbox message carries the reporter's ``Workspace``; none means the policy's).
"""

import html
import logging
import time
from datetime import datetime, timezone

import aiohttp
from slack_bolt import BoltResponse
from slack_bolt.error import BoltError
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import (
    AsyncSQLAlchemyInstallationStore,
    SQLAlchemyInstallationStore,
)
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import and_, delete, desc, func, select

from bot.runtime.slack_reads import with_read_retries
from storage.database import Database
from storage.models import Workspace

log = logging.getLogger(__name__)

# The bot scopes the OAuth flow asks for: manifest.yml's oauth_config.scopes.bot (a test keeps them equal).
BOT_SCOPES = [
    "commands",
    "chat:write",
    "reactions:read",
    "channels:history",
    "groups:history",
    "usergroups:read",
    "files:write",
    "users:read",
    "users:read.email",
    "channels:read",
    "groups:read",
    "im:history",
]
OAUTH_STATE_SECONDS = 600  # an install link works for ten minutes
MAX_LIVE_STATES = 1000  # unexpired install links kept; a flood of GET /slack/install drops the oldest
TOKEN_CACHE_SECONDS = 60  # how long a looked-up token is reused before asking the store again


class NotInstalled(Exception):
    """No installation can speak for this workspace (never installed, or uninstalled)."""


def installation_store(db: Database, client_id: str) -> AsyncSQLAlchemyInstallationStore:
    return AsyncSQLAlchemyInstallationStore(client_id=client_id, engine=db.async_engine)


class PurgingStateStore(AsyncSQLAlchemyOAuthStateStore):
    """slack-sdk's state store, which deletes a state only when it is used: here each new state
    first deletes the expired ones and keeps at most ``MAX_LIVE_STATES``, so public GETs of
    /slack/install cannot grow the table for ever."""

    async def async_issue(self, *args, **kwargs) -> str:
        c = self.oauth_states.c
        now = datetime.now(timezone.utc).replace(tzinfo=None)  # slack-sdk stores naive UTC
        async with self.engine.begin() as conn:
            await conn.execute(delete(self.oauth_states).where(c.expire_at <= now))
            newest = (await conn.execute(select(func.max(c.id)))).scalar()
            if newest is not None and newest >= MAX_LIVE_STATES:
                await conn.execute(delete(self.oauth_states).where(c.id <= newest - MAX_LIVE_STATES + 1))
        return await super().async_issue(*args, **kwargs)


def state_store(db: Database) -> AsyncSQLAlchemyOAuthStateStore:
    return PurgingStateStore(expiration_seconds=OAUTH_STATE_SECONDS, engine=db.async_engine)


class Allowlist:
    """The workspaces (T…) and Enterprise Grid orgs (E…) the bot installs into and serves.
    ``ids`` None: none named (no ``ALLOWED_WORKSPACES``, no policy ``workspace``): the first
    installation is the only one allowed."""

    def __init__(self, ids: frozenset[str] | None):
        self.ids = ids

    @classmethod
    def from_settings(cls, allowed: str | None, home: str | None) -> "Allowlist":
        """``allowed``: the ALLOWED_WORKSPACES setting (comma-separated); default: the policy's ``home``."""
        ids = {i.strip() for i in (allowed or "").split(",") if i.strip()} or ({home} if home else set())
        return cls(frozenset(ids) if ids else None)

    def allows(self, team_id: str | None, enterprise_id: str | None) -> bool:
        if self.ids is None:
            return True
        return bool((team_id and team_id in self.ids) or (enterprise_id and enterprise_id in self.ids))


class NotAllowed(BoltError):
    """An installation into a workspace or org the bot does not serve."""


REFUSED_PAGE = (
    "<html><body><h2>This app serves only its own workspace</h2><p>Platform Feedback here is run by one "
    "organisation's platform team for its own Slack workspace, so it cannot be installed into {what}. "
    "Nothing was saved.</p></body></html>"
)


class AllowlistOAuthFlow(AsyncOAuthFlow):
    """Bolt's OAuth flow that refuses, before saving it, an installation the allowlist does not allow
    (with no allowlist: any installation but the first one's workspace or org)."""

    allowlist: Allowlist

    async def store_installation(self, request, installation: Installation):
        if not await self._allowed(installation):
            log.warning("refused an installation into %s", installation.enterprise_id if installation.is_enterprise_install else installation.team_id)
            raise NotAllowed(installation.enterprise_id if installation.is_enterprise_install else installation.team_id or "?")
        await super().store_installation(request, installation)

    async def _allowed(self, installation: Installation) -> bool:
        if self.allowlist.ids is not None:
            return self.allowlist.allows(installation.team_id, installation.enterprise_id)
        store = self.settings.installation_store
        assert isinstance(store, AsyncSQLAlchemyInstallationStore)  # _oauth_app gives the flow slack-sdk's SQLAlchemy store
        c = store.bots.c
        installed = select(c.enterprise_id, c.team_id).where(c.client_id == store.client_id, c.bot_token.is_not(None)).distinct().limit(5)
        async with store.engine.connect() as conn:
            others = [(e, t) for e, t in (await conn.execute(installed)).all()
                      if (e, t) != (installation.enterprise_id, None if installation.is_enterprise_install else installation.team_id)]
        return not others


async def refused_install_page(args):
    """Bolt's failure callback: a clear page for a refused installation, Bolt's own for the rest."""
    if isinstance(args.error, NotAllowed):
        return BoltResponse(status=403, body=REFUSED_PAGE.format(what=html.escape(f"workspace {args.error}")),
                            headers={"Content-Type": "text/html; charset=utf-8"})
    return await args.default.failure(args)


class Workspaces:
    """Hands out a Web API client for a workspace (None: the one the team policy names)."""

    def __init__(
        self,
        *,
        client: AsyncWebClient | None = None,
        store: AsyncSQLAlchemyInstallationStore | None = None,
        home: str | None = None,
        api_url: str = "https://slack.com/api/",
        clock=time.monotonic,
    ):
        """``client``: the one workspace's client (SLACK_BOT_TOKEN). Or ``store``: installations,
        with ``home`` the policy's workspace (T...) or org (E...)."""
        self.single = client  # the one workspace's client, or None: installations
        self.store = store
        self.home = home
        self.api_url = api_url
        self._clock = clock
        self.session: aiohttp.ClientSession | None = None  # shared by the clients made here, once serving
        self._tokens: dict[Workspace | None, tuple[str, float]] = {}
        self._clients: dict[str, AsyncWebClient] = {}

    async def client(self, workspace: Workspace | None = None) -> AsyncWebClient:
        """A client whose token speaks for ``workspace``. Raises NotInstalled."""
        if self.store is None:
            assert self.single is not None, "Workspaces needs a client or a store"
            return self.single
        token = await self.token(workspace)
        if token not in self._clients:
            if len(self._clients) > 1000:  # tokens of uninstalled workspaces, rotated tokens
                self._clients.clear()
            client = AsyncWebClient(token=token, base_url=self.api_url, session=self.session)
            self._clients[token] = with_read_retries(client)
        return self._clients[token]

    async def token(self, workspace: Workspace | None) -> str:
        cached = self._tokens.get(workspace)
        if cached is not None and cached[1] > self._clock():
            return cached[0]
        assert self.store is not None, "tokens come from installations: without a store, client() is the one client"
        bot = await (self._home_bot(self.store) if workspace is None else self._bot(self.store, workspace))
        if bot is None or not bot.bot_token:
            self._tokens.pop(workspace, None)
            raise NotInstalled(self._describe(workspace))
        self._tokens[workspace] = (bot.bot_token, self._clock() + TOKEN_CACHE_SECONDS)
        return bot.bot_token

    def forget(self) -> None:
        """Drop cached tokens (after an uninstall)."""
        self._tokens.clear()

    async def _bot(self, store: AsyncSQLAlchemyInstallationStore, workspace: Workspace) -> Bot | None:
        """The workspace's own installation or, on a Grid, its org's."""
        bot = None
        if workspace.team_id:
            bot = await store.async_find_bot(enterprise_id=workspace.enterprise_id, team_id=workspace.team_id)
        if bot is None and workspace.enterprise_id:
            bot = await store.async_find_bot(
                enterprise_id=workspace.enterprise_id, team_id=None, is_enterprise_install=True
            )
        return bot

    async def _home_bot(self, store: AsyncSQLAlchemyInstallationStore) -> Bot | None:
        c = store.bots.c
        mine = and_(c.client_id == store.client_id, c.bot_token.is_not(None))
        async with store.engine.connect() as conn:
            if self.home is None:  # the only installation, if there is only one
                installed = select(c.enterprise_id, c.team_id).where(mine).distinct().limit(2)
                if len((await conn.execute(installed)).all()) != 1:
                    return None
                where = mine
            elif self.home.startswith("E"):  # an org-wide installation
                where = and_(mine, c.enterprise_id == self.home, c.team_id.is_(None))
            else:  # a workspace, on a Grid or not
                where = and_(mine, c.team_id == self.home)
            query = select(store.bots).where(where).order_by(desc(c.installed_at)).limit(1)
            row = (await conn.execute(query)).mappings().first()
        return SQLAlchemyInstallationStore.build_bot_entity(row) if row is not None else None

    def _describe(self, workspace: Workspace | None) -> str:
        if workspace is not None:
            return f"the app is not installed in workspace {workspace.team_id or workspace.enterprise_id}"
        if self.home is None:
            return "no single installation to speak for the team policy: install the app, or set workspace in the team policy"
        return f"the app is not installed in the team policy's workspace {self.home}"
