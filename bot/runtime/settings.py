"""Settings from the environment: secrets and deployment (``.env`` is read too).

A bad value stops start-up with ``ConfigError``: one line that names the setting and what to do.
The team policy (one YAML file) is ``bot.policy`` (read by ``bot.runtime.config``).
"""

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.runtime.config_errors import settings_problems

if TYPE_CHECKING:
    from storage.database import Database


class ConfigError(Exception):
    """A setting is missing or malformed. ``str()`` is the one line shown to the operator."""


# ---------------------------------------------------------------- environment


class DatabaseSettings(BaseSettings):
    """Just the database: what ``migrate`` needs, without the Slack secrets."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    database_url: str = Field(default="sqlite:///platform-feedback.db", description="a SQLAlchemy database URL")
    # PostgreSQL's default lets one big query take three of the server's CPUs (a leader and two
    # parallel workers); on a small server that starves the acks' own queries (bench/README.md).
    database_background_workers: int = Field(
        default=0, ge=0, le=64,
        description="PostgreSQL parallel workers (0-64) each background query (dashboard, digest, reports, exports) may use")

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, v: str) -> str:
        # Hosted PostgreSQL often hands out postgres:// URLs; we speak psycopg 3.
        for prefix in ("postgres://", "postgresql://"):
            if v.startswith(prefix):
                return "postgresql+psycopg://" + v[len(prefix) :]
        if not v.startswith(("sqlite:", "postgresql+psycopg:")):
            raise ValueError("must start with sqlite:/// or postgresql+psycopg://")
        return v

    def database(self) -> "Database":
        """The database these settings name, as they configure it."""
        from storage.database import Database

        return Database(self.database_url, background_workers=self.database_background_workers)


class ReportSettings(DatabaseSettings):
    """The database and the team policy: what ``report`` and ``export`` need, without Slack."""

    config_file: Path | None = Field(default=None, description="the path of the team-policy YAML file")


class Settings(DatabaseSettings):
    # One workspace: its bot token. Several workspaces or an Enterprise Grid org: the app's OAuth
    # credentials instead, and each installation's token is kept in the database.
    slack_bot_token: str | None = Field(
        default=None, description="the bot token (xoxb-...) from OAuth & Permissions (one workspace)"
    )
    slack_client_id: str | None = Field(
        default=None, description="the Client ID from Basic Information, to install into several workspaces"
    )
    slack_client_secret: str | None = Field(default=None, description="the Client Secret from Basic Information")
    slack_redirect_uri: str | None = Field(
        default=None, description="the https URL of /slack/oauth_redirect, as listed under OAuth & Permissions > Redirect URLs"
    )
    slack_signing_secret: str = Field(
        default="", description="the signing secret from Basic Information (not needed in Socket Mode)"
    )
    slack_app_token: str | None = Field(default=None, description="an app-level token (xapp-...) with connections:write")
    slack_api_url: str = Field(default="https://slack.com/api/", description="the Slack Web API base URL")
    port: int = Field(default=3000, ge=1, le=65535, description="a TCP port number (1-65535)")
    host: str = Field(default="0.0.0.0", description="the address to listen on")
    # What one client may hold of the HTTP server (bot.runtime.http_limits): Slack and the trackers
    # send a whole request in well under a second; a client that dawdles on purpose is cut off.
    http_header_seconds: float = Field(default=10, gt=0, le=300,
                                       description="seconds (up to 300) a client has to send a request's headers")
    http_body_seconds: float = Field(default=30, gt=0, le=600,
                                     description="seconds (up to 600) a client has to send a request's body")
    http_keep_alive_seconds: float = Field(default=5, gt=0, le=300,
                                           description="seconds (up to 300) an idle connection is kept open between requests")
    http_max_connections: int = Field(default=500, ge=1, le=100_000,
                                      description="connections (1-100000) open at once; past it new ones are closed")
    # How long a sender holds the outbox messages it claimed: after a kill -9 the rest go after this.
    # A batch starts its requests within 10 s (half the claim if less) and slack_sdk waits up to 30 s for
    # an answer: with several instances, below about 45 s a slow request's message could be claimed and
    # sent again by another instance.
    outbox_claim_seconds: int = Field(
        default=60, ge=5, le=3600, description="seconds (5-3600) a sender holds the outbox messages it claimed"
    )
    config_file: Path | None = Field(default=None, description="the path of the team-policy YAML file")
    # Slack events acked while the database was down wait here (bot.runtime.spool): a local file,
    # not on the database's server. One file per instance.
    event_spool_path: Path = Field(default=Path("platform-feedback-events.spool"),
                                   description="the path of the local file that keeps events during a database outage")
    event_spool_max_mb: int = Field(default=100, ge=1, le=100_000,
                                    description="megabytes (1-100000) of events the spool may hold; past it events are refused (503)")
    # Tracker webhooks: a route answers only when its secret is set.
    github_webhook_secret: str | None = Field(default=None, description="the secret of the GitHub webhook")
    jira_webhook_secret: str | None = Field(default=None, description="the secret of the Jira admin webhook")
    linear_webhook_secret: str | None = Field(default=None, description="the signing secret of the Linear webhook")
    gitlab_webhook_token: str | None = Field(default=None, description="the secret token of the GitLab webhook")
    # Tracker APIs, for polling (policy closing.poll_minutes): a tracker is polled only when set.
    github_token: str | None = Field(default=None, description="a GitHub token that can read the linked repositories' issues")
    github_api_url: str | None = Field(default="https://api.github.com", description="the GitHub REST API base URL (GitHub Enterprise: https://HOST/api/v3)")
    gitlab_token: str | None = Field(default=None, description="a GitLab access token with read_api")
    gitlab_api_url: str | None = Field(default="https://gitlab.com/api/v4", description="the GitLab REST API base URL (https://HOST/api/v4)")
    jira_base_url: str | None = Field(default=None, description="the Jira site URL, e.g. https://acme.atlassian.net")
    jira_email: str | None = Field(default=None, description="the Jira Cloud account email for JIRA_API_TOKEN (unset: the token is a Data Center PAT)")
    jira_api_token: str | None = Field(default=None, description="a Jira Cloud API token, or a Data Center personal access token")
    linear_api_key: str | None = Field(default=None, description="a Linear personal API key that can read the linked issues")
    linear_api_url: str | None = Field(default="https://api.linear.app/graphql", description="the Linear GraphQL API URL")
    allowed_workspaces: str | None = Field(
        default=None, pattern=r"^\s*[TE][A-Z0-9]{2,31}(\s*,\s*[TE][A-Z0-9]{2,31})*\s*$",
        description="comma-separated workspace (T...) and Enterprise Grid org (E...) ids that may install and use the app (default: the policy's workspace)",
    )
    # Usage events (POST /events/usage, bot.usage): off (404) unless the secret is set.
    usage_signing_secret: str | None = Field(
        default=None, description="a random secret of at least 16 characters that platform tools sign usage events with (HMAC-SHA256)")
    usage_events_per_second: float = Field(
        default=300, gt=0, le=100_000, description="usage events (per second, up to 100000) one sending address may post; past it 429")
    # The read-only dashboard at /dashboard: off (404) unless one of these is set.
    dashboard_token: str | None = Field(default=None, description="a random secret of at least 16 characters for /dashboard (Bearer or ?token=)")
    dashboard_trusted_header: str | None = Field(
        default=None, description="a header name your SSO proxy sets on authenticated requests, e.g. X-Forwarded-Email"
    )

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token(cls, v: str | None) -> str | None:
        if v:
            _token_shape(v, "xoxb-", "a bot token")
            if len(v) < 10:
                raise ValueError("must be a bot token starting with xoxb-")
        return v or None

    @field_validator("dashboard_token")
    @classmethod
    def _dashboard_token(cls, v: str | None) -> str | None:
        if v and (len(v) < 16 or v.strip() != v):
            raise ValueError("must be at least 16 characters without surrounding spaces")
        return v or None

    @field_validator("usage_signing_secret")
    @classmethod
    def _usage_secret(cls, v: str | None) -> str | None:
        if v and (len(v) < 16 or v.strip() != v):
            raise ValueError("must be at least 16 characters without surrounding spaces (e.g. openssl rand -hex 32)")
        return v or None

    @field_validator("dashboard_trusted_header")
    @classmethod
    def _trusted_header(cls, v: str | None) -> str | None:
        if v and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}", v):
            raise ValueError("must be an HTTP header name such as X-Forwarded-Email")
        return v or None

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, v: str | None) -> str | None:
        if v:
            _token_shape(v, "xapp-", "an app-level token")
        return v or None

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return v if v.endswith("/") else v + "/"

    @field_validator("slack_redirect_uri")
    @classmethod
    def _redirect_uri(cls, v: str | None) -> str | None:
        if v and not re.fullmatch(r"https?://[^\s]+/slack/oauth_redirect", v):
            raise ValueError("must be the bot's public URL ending in /slack/oauth_redirect")
        return v or None

    @model_validator(mode="after")
    def _slack_credentials(self) -> "Settings":
        # Every problem at once (a model validator that raises stops the ones after it): with
        # nothing set, both the token and the signing secret are named in the one line.
        problems = []
        oauth = [bool(self.slack_client_id), bool(self.slack_client_secret)]
        if any(oauth) and not all(oauth):
            problems.append("SLACK_CLIENT_ID and SLACK_CLIENT_SECRET go together: set both to install through OAuth")
        elif self.slack_bot_token and all(oauth):
            problems.append("set SLACK_BOT_TOKEN for one workspace, or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET to install "
                            "into several, not both")
        elif not self.slack_bot_token and not all(oauth):
            problems.append("SLACK_BOT_TOKEN is not set: set it to the bot token (xoxb-...) from OAuth & Permissions, or set "
                            "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET to install into several workspaces")
        if self.oauth and self.slack_app_token:
            problems.append("installing through OAuth needs HTTP: unset SLACK_APP_TOKEN (Socket Mode) or the OAuth settings")
        if not self.slack_app_token and not self.slack_signing_secret:
            problems.append("SLACK_SIGNING_SECRET is not set: set it to the Signing Secret from Basic Information > App "
                            "Credentials (not needed with SLACK_APP_TOKEN, Socket Mode)")
        elif not self.slack_app_token and len(self.slack_signing_secret) < 8:
            # Slack's are 32 hex characters; a few characters are a paste gone wrong, not a secret.
            problems.append(f"SLACK_SIGNING_SECRET is too short ({len(self.slack_signing_secret)} characters): copy the "
                            "Signing Secret from Basic Information > App Credentials (32 characters)")
        elif not self.slack_app_token and self.slack_signing_secret.strip() != self.slack_signing_secret:
            problems.append("SLACK_SIGNING_SECRET has spaces around it (pasted with a trailing space?): remove them")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def secrets(self) -> list[str]:
        """Every secret value, for the log filter that keeps them out of the logs."""
        names = [n for n in type(self).model_fields if n.endswith(("_token", "_secret", "_key"))]
        return [v for v in (getattr(self, n) for n in names) if isinstance(v, str) and v]

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    @property
    def oauth(self) -> bool:
        """Installed into workspaces through OAuth, each with its own token (not one SLACK_BOT_TOKEN)."""
        return self.slack_client_id is not None


class OfflineSettings(Settings):
    """``Settings`` for the commands that build the app but answer no Slack request (``jobs``,
    ``run-job``): the Slack credentials are optional here (each one set is still checked for its
    shape). Without SLACK_BOT_TOKEN the app is authorised for no workspace and posts nothing; what
    a job queues waits in the outbox for the serving bot."""

    @model_validator(mode="after")
    def _slack_credentials(self) -> "OfflineSettings":  # replaces Settings' check of the same name
        return self

    @property
    def can_post(self) -> bool:
        """True when this process can send to Slack itself (a bot token, or OAuth's installations)."""
        return bool(self.slack_bot_token) or self.oauth


def _token_shape(value: str, prefix: str, what: str) -> None:
    """Raise ValueError saying what is wrong with a Slack token as written: the README's placeholder,
    spaces around it (a paste), or another kind of token (https://api.slack.com/authentication/token-types)."""
    if "…" in value or "..." in value or value.strip().rstrip(".…") == prefix:
        raise ValueError(f"is the placeholder {value.strip()!r}: set it to your app's real token ({what}, {prefix}...)")
    if value.strip() != value:
        raise ValueError("has spaces or a line break around it (pasted with a trailing space?): remove them")
    if not value.startswith(prefix):
        kind = {"xoxb-": "a bot token", "xoxp-": "a user token", "xapp-": "an app-level token", "xoxe": "a refresh token"}
        seen = next((k for p, k in kind.items() if value.startswith(p)), None)
        raise ValueError(f"must be {what} starting with {prefix}" + (f" (this one is {seen})" if seen else ""))


S = TypeVar("S", bound=BaseSettings)


@overload
def load_settings(kind: type[S], **overrides: Any) -> S: ...
@overload
def load_settings(**overrides: Any) -> Settings: ...


def load_settings(kind: type[BaseSettings] = Settings, **overrides: Any) -> BaseSettings:
    """``kind`` (``Settings`` when not given) from the environment, ``overrides`` winning; a bad value raises
    ``ConfigError``. The overloads tell mypy which class comes back (a TypeVar can't default to ``Settings``)."""
    try:
        return kind(**overrides)
    except ValidationError as exc:
        raise ConfigError(settings_problems(kind, exc)) from None
