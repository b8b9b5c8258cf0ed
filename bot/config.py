"""Settings from the environment (secrets, deployment) and team policy from one YAML file.

A bad value stops start-up with ``ConfigError``: one line that names the setting and what to do.
"""

from pathlib import Path
from typing import Annotated, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_POLICY_FILE = "platform-feedback.yml"


class ConfigError(Exception):
    """A setting is missing or malformed. ``str()`` is the one line shown to the operator."""


# ---------------------------------------------------------------- environment


class DatabaseSettings(BaseSettings):
    """Just the database: what ``migrate`` needs, without the Slack secrets."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    database_url: str = Field(default="sqlite:///platform-feedback.db", description="a SQLAlchemy database URL")

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


class Settings(DatabaseSettings):
    slack_bot_token: str = Field(description="the bot token (xoxb-...) from OAuth & Permissions")
    slack_signing_secret: str = Field(
        default="", description="the signing secret from Basic Information (not needed in Socket Mode)"
    )
    slack_app_token: str | None = Field(default=None, description="an app-level token (xapp-...) with connections:write")
    slack_api_url: str = Field(default="https://slack.com/api/", description="the Slack Web API base URL")
    port: int = Field(default=3000, ge=1, le=65535, description="a TCP port number (1-65535)")
    host: str = Field(default="0.0.0.0", description="the address to listen on")
    config_file: Path | None = Field(default=None, description="the path of the team-policy YAML file")
    # Tracker webhooks: a route answers only when its secret is set.
    github_webhook_secret: str | None = Field(default=None, description="the secret of the GitHub webhook")
    jira_webhook_secret: str | None = Field(default=None, description="the secret of the Jira admin webhook")
    linear_webhook_secret: str | None = Field(default=None, description="the signing secret of the Linear webhook")
    gitlab_webhook_token: str | None = Field(default=None, description="the secret token of the GitLab webhook")

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token(cls, v: str) -> str:
        if not v.startswith("xoxb-") or v.strip() != v or len(v) < 10:
            raise ValueError("must be a bot token starting with xoxb-")
        return v

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, v: str | None) -> str | None:
        if v and not v.startswith("xapp-"):
            raise ValueError("must be an app-level token starting with xapp-")
        return v or None

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return v if v.endswith("/") else v + "/"

    @model_validator(mode="after")
    def _signing_secret_unless_socket_mode(self) -> "Settings":
        if not self.slack_app_token and len(self.slack_signing_secret) < 8:
            raise ValueError("SLACK_SIGNING_SECRET is required unless SLACK_APP_TOKEN (Socket Mode) is set")
        return self

    def secrets(self) -> list[str]:
        """Every secret value, for the log filter that keeps them out of the logs."""
        names = [n for n in type(self).model_fields if n.endswith(("_token", "_secret", "_key"))]
        return [v for v in (getattr(self, n) for n in names) if isinstance(v, str) and v]

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None


S = TypeVar("S", bound=BaseSettings)


def load_settings(kind: type[S] = Settings, **overrides) -> S:
    try:
        return kind(**overrides)
    except ValidationError as exc:
        raise ConfigError(_settings_error_line(kind, exc)) from None


def _settings_error_line(kind: type[BaseSettings], exc: ValidationError) -> str:
    err = exc.errors()[0]
    if not err["loc"]:  # a model-level rule: its message already names the settings
        return str(err["msg"]).removeprefix("Value error, ")
    name = str(err["loc"][0])
    field = kind.model_fields.get(name)
    hint = field.description if field else ""
    env = name.upper()
    if err["type"] == "missing":
        return f"{env} is not set: set it to {hint}."
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{env} is invalid ({msg}): set it to {hint}."


# ---------------------------------------------------------------- team policy (YAML)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Category(_Strict):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    label: Annotated[str, Field(min_length=1, max_length=75)]
    keywords: list[str] = []


DEFAULT_CATEGORIES = [
    Category(id="ci", label="CI", keywords=["ci", "pipeline", "build", "flaky", "runner"]),
    Category(id="deploys", label="Deploys", keywords=["deploy", "release", "rollout", "rollback"]),
    Category(id="environments", label="Environments", keywords=["staging", "env", "environment", "sandbox"]),
    Category(id="docs", label="Docs", keywords=["docs", "documentation", "readme", "runbook"]),
    Category(id="access", label="Access", keywords=["access", "permission", "sso", "vpn", "login"]),
    Category(id="observability", label="Observability", keywords=["logs", "metrics", "alert", "dashboard"]),
    Category(id="onboarding", label="Onboarding", keywords=["onboarding", "new joiner", "setup"]),
    Category(id="other", label="Other"),
]


class Taxonomy(_Strict):
    categories: Annotated[list[Category], Field(min_length=1, max_length=100)] = DEFAULT_CATEGORIES

    @model_validator(mode="after")
    def _unique_ids(self) -> "Taxonomy":
        ids = [c.id for c in self.categories]
        if len(ids) != len(set(ids)):
            raise ValueError("category ids must be unique")
        return self

    def label(self, category_id: str) -> str:
        return next((c.label for c in self.categories if c.id == category_id), category_id)

    def has(self, category_id: str) -> bool:
        return any(c.id == category_id for c in self.categories)


class Intake(_Strict):
    reaction: Annotated[str, Field(pattern=r"^[a-z0-9_+'-]+$")] = "ticket"


ChannelId = Annotated[str, Field(pattern=r"^[CG][A-Z0-9]+$")]


class Hosts(_Strict):
    users: list[Annotated[str, Field(pattern=r"^[UW][A-Z0-9]+$")]] = []
    usergroup: Annotated[str, Field(pattern=r"^S[A-Z0-9]+$")] | None = None
    refresh_minutes: Annotated[int, Field(ge=1, le=1440)] = 10


class Triage(_Strict):
    channel: ChannelId | None = None  # where each new report's card is posted


UserId = Annotated[str, Field(pattern=r"^[UW][A-Z0-9]+$")]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class OfficeHoursSession(_Strict):
    weekday: Weekday
    time: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]  # local time, HH:MM
    timezone: str = "UTC"
    minutes: Annotated[int, Field(ge=5, le=480)] = 60
    channel: ChannelId

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name such as Europe/Berlin)") from None
        return v


class OfficeHours(_Strict):
    sessions: list[OfficeHoursSession] = []
    rotation: list[UserId] = []  # hosts on duty, one per session in turn
    agenda_before_minutes: Annotated[int, Field(ge=0, le=1440)] = 60


class Closing(_Strict):
    # Where "you said, we did" goes: per closure, as a weekly digest, or not at all.
    announce_channel: ChannelId | None = None
    announce: Literal["per_closure", "weekly", "off"] = "per_closure"
    not_planned_message: Annotated[str, Field(min_length=1, max_length=1000)] = (
        "The platform team closed the issue behind your report without a fix for now. "
        "We know that is not what you hoped for; if it still gets in your way, tell us."
    )
    # Jira resolutions that mean "not planned" (compared case-insensitively); any other is a fix.
    jira_not_planned: list[str] = ["won't do", "won't fix", "declined", "cannot reproduce", "duplicate"]


class HelpChannel(_Strict):
    channel: ChannelId | None = None  # every new top-level message here becomes a data point
    join_minutes: Annotated[int, Field(ge=0, le=120)] = 5  # a follow-up within this joins the same one
    resolve_reaction: Annotated[str, Field(pattern=r"^[a-z0-9_+'-]+$")] = "white_check_mark"


class Policy(_Strict):
    reference_prefix: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9]{0,9}$")] = "FB"
    intake: Intake = Intake()
    taxonomy: Taxonomy = Taxonomy()
    hosts: Hosts = Hosts()
    triage: Triage = Triage()
    office_hours: OfficeHours = OfficeHours()
    help_channel: HelpChannel = HelpChannel()
    closing: Closing = Closing()

    @model_validator(mode="after")
    def _distinct_reactions(self) -> "Policy":
        if self.help_channel.channel and self.help_channel.resolve_reaction == self.intake.reaction:
            raise ValueError("help_channel.resolve_reaction must differ from intake.reaction (one files, the other resolves)")
        return self


def load_policy(path: Path | None) -> Policy:
    """Read the team policy. No file named and none in the working directory: the defaults."""
    if path is None:
        default = Path(DEFAULT_POLICY_FILE)
        if not default.exists():
            return Policy()
        path = default
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"CONFIG_FILE {path}: cannot read it ({exc.strerror}).") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"CONFIG_FILE {path}: not valid YAML{where}.") from None
    try:
        return Policy.model_validate(raw or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"CONFIG_FILE {path}: {where}: {msg}.") from None
