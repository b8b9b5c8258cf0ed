"""Settings from the environment (secrets, deployment) and team policy from one YAML file.

A bad value stops start-up with ``ConfigError``: one line that names the setting and what to do.
"""

import re
from datetime import date
from pathlib import Path
from typing import Annotated, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
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
    # How long a sender holds the outbox messages it claimed: after a kill -9 the rest go after this.
    # A batch starts its requests within 10 s (half the claim if less) and slack_sdk waits up to 30 s for
    # an answer: with several instances, below about 45 s a slow request's message could be claimed and
    # sent again by another instance.
    outbox_claim_seconds: int = Field(
        default=60, ge=5, le=3600, description="seconds (5-3600) a sender holds the outbox messages it claimed"
    )
    config_file: Path | None = Field(default=None, description="the path of the team-policy YAML file")
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
    # The read-only dashboard at /dashboard: off (404) unless one of these is set.
    dashboard_token: str | None = Field(default=None, description="a random secret of at least 16 characters for /dashboard (Bearer or ?token=)")
    dashboard_trusted_header: str | None = Field(
        default=None, description="a header name your SSO proxy sets on authenticated requests, e.g. X-Forwarded-Email"
    )

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token(cls, v: str | None) -> str | None:
        if v and (not v.startswith("xoxb-") or v.strip() != v or len(v) < 10):
            raise ValueError("must be a bot token starting with xoxb-")
        return v or None

    @field_validator("dashboard_token")
    @classmethod
    def _dashboard_token(cls, v: str | None) -> str | None:
        if v and (len(v) < 16 or v.strip() != v):
            raise ValueError("must be at least 16 characters without surrounding spaces")
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
        if v and not v.startswith("xapp-"):
            raise ValueError("must be an app-level token starting with xapp-")
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
    def _one_way_to_get_a_token(self) -> "Settings":
        oauth = [bool(self.slack_client_id), bool(self.slack_client_secret)]
        if any(oauth) and not all(oauth):
            raise ValueError("SLACK_CLIENT_ID and SLACK_CLIENT_SECRET go together: set both to install through OAuth")
        if self.slack_bot_token and all(oauth):
            raise ValueError(
                "set SLACK_BOT_TOKEN for one workspace, or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET to install "
                "into several, not both"
            )
        if not self.slack_bot_token and not all(oauth):
            raise ValueError(
                "SLACK_BOT_TOKEN is not set: set it to the bot token (xoxb-...) from OAuth & Permissions, or set "
                "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET to install into several workspaces"
            )
        if self.oauth and self.slack_app_token:
            raise ValueError("installing through OAuth needs HTTP: unset SLACK_APP_TOKEN (Socket Mode) or the OAuth settings")
        return self

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

    @property
    def oauth(self) -> bool:
        """Installed into workspaces through OAuth, each with its own token (not one SLACK_BOT_TOKEN)."""
        return self.slack_client_id is not None


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


def _zone(v: str) -> str:
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {v!r} (use an IANA name such as Europe/Berlin)") from None
    return v


TimeZone = Annotated[str, AfterValidator(_zone)]  # an IANA name, e.g. Europe/Berlin


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
    timezone: TimeZone = "UTC"
    minutes: Annotated[int, Field(ge=5, le=480)] = 60
    channel: ChannelId


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
    # Poll the trackers every this many minutes for teams without webhooks (0: off; needs API credentials).
    poll_minutes: Annotated[int, Field(ge=0, le=1440)] = 0


class Retention(_Strict):
    # Closed reports (resolved, won't fix, merged) older than this are deleted daily; unset: kept.
    friction_days: Annotated[int, Field(ge=30, le=3650)] | None = None


class HelpChannel(_Strict):
    channel: ChannelId | None = None  # every new top-level message here becomes a data point
    join_minutes: Annotated[int, Field(ge=0, le=120)] = 5  # a follow-up within this joins the same one
    resolve_reaction: Annotated[str, Field(pattern=r"^[a-z0-9_+'-]+$")] = "white_check_mark"


class Insight(_Strict):
    window_days: Annotated[int, Field(ge=1, le=365)] = 30  # scores and loop numbers; trends compare with the window before
    duplicate_threshold: Annotated[int, Field(ge=0, le=100)] = 70  # text similarity for "possible duplicate" (0: off)
    digest_channel: ChannelId | None = None  # the weekly digest is posted here; unset: no digest
    digest_weekday: Weekday = "mon"
    digest_time: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] = "09:00"  # local time, HH:MM
    timezone: TimeZone = "UTC"
    chart_weeks: Annotated[int, Field(ge=2, le=52)] = 8  # weeks in the digest's chart


# ---------------------------------------------------------------- pulse surveys

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
UserGroupId = Annotated[str, Field(pattern=r"^S[A-Z0-9]+$")]
MAX_QUESTIONS = 10  # a DM holds each question's buttons; 10 keeps it under Slack's 50 blocks


class SurveyQuestion(_Strict):
    id: Slug
    kind: Literal["nps", "csat", "choice", "text"]  # NPS 0-10, CSAT 1-5, one of `options`, free text
    text: Annotated[str, Field(min_length=1, max_length=300)]
    options: list[Annotated[str, Field(min_length=1, max_length=75)]] = []  # choice only: 2-10 button labels

    @model_validator(mode="after")
    def _options(self) -> "SurveyQuestion":
        if self.kind == "choice":
            if not 2 <= len(self.options) <= 10:
                raise ValueError(f"question {self.id!r}: a choice question needs 2 to 10 options")
            if len({o.casefold() for o in self.options}) != len(self.options):
                raise ValueError(f"question {self.id!r}: options must be different")
        elif self.options:
            raise ValueError(f"question {self.id!r}: only a choice question has options")
        return self


class SurveyAudience(_Strict):
    """Who is asked: the union of these (bots, deleted accounts and people who opted out are left out)."""

    channels: list[ChannelId] = []  # members of these channels (conversations.members)
    usergroups: list[UserGroupId] = []  # members of these user groups (usergroups.users.list)
    active_days: Annotated[int, Field(ge=1, le=365)] | None = None  # everyone who filed or reported in the last N days

    @model_validator(mode="after")
    def _someone(self) -> "SurveyAudience":
        if not (self.channels or self.usergroups or self.active_days):
            raise ValueError("name at least one of channels, usergroups or active_days")
        return self


class Survey(_Strict):
    name: Slug
    title: Annotated[str, Field(min_length=1, max_length=140)] | None = None  # shown in the DM; default: the name
    questions: Annotated[list[SurveyQuestion], Field(min_length=1, max_length=MAX_QUESTIONS)]
    audience: SurveyAudience
    # Segments for results: the first of these user groups (or of the audience's) a person is in,
    # else the audience channel they were found in.
    segment_usergroups: list[UserGroupId] = []
    schedule: str | None = None  # a 5-field cron expression, e.g. "0 0 1 1,4,7,10 *" (quarterly); none: only by hand
    timezone: TimeZone = "UTC"  # the schedule's clock (and the delivery clock of people without one)
    delivery_hour: Annotated[int, Field(ge=0, le=23)] = 10  # the DM arrives at this hour in the recipient's own time zone
    anonymous: bool = True
    remind_after_days: Annotated[int, Field(ge=0, le=30)] = 1  # 0: no reminder after the DM
    remind_before_close: bool = True  # a last reminder the day before it closes (never more than two in all)
    close_after_days: Annotated[int, Field(ge=2, le=90)] = 7
    min_group: Annotated[int, Field(ge=3, le=1000)] = 5  # results per segment only where at least this many answered
    results_channel: ChannelId | None = None  # default: triage.channel

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(v)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"invalid cron expression {v!r} ({exc}); use 5 fields: minute hour day month weekday") from None
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "Survey":
        ids = [q.id for q in self.questions]
        if len(ids) != len(set(ids)):
            raise ValueError("question ids must be unique")
        if self.schedule:
            from datetime import datetime, timedelta, timezone

            from apscheduler.triggers.cron import CronTrigger

            trigger = CronTrigger.from_crontab(self.schedule, timezone=self.timezone)
            fire = trigger.get_next_fire_time(None, datetime(2025, 1, 1, tzinfo=timezone.utc))
            for _ in range(20):  # a run closes before the next one starts
                after = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1)) if fire else None
                if fire is None or after is None:
                    break
                if after - fire < timedelta(days=self.close_after_days):
                    raise ValueError(f"schedule fires more often than the survey stays open (close_after_days: {self.close_after_days})")
                fire = after
        return self

    @property
    def display_title(self) -> str:
        return self.title or self.name


class CsatFollowup(_Strict):
    """After a host resolves a report, ask its reporters whether that solved their problem (1-5)."""

    enabled: bool = False
    question: Annotated[str, Field(min_length=1, max_length=200)] = "Did this solve your problem?"
    delay_minutes: Annotated[int, Field(ge=0, le=10080)] = 60  # asked this long after the resolve, if still resolved


def _unique_survey_names(surveys: list[Survey]) -> list[Survey]:
    names = [s.name for s in surveys]
    if len(names) != len(set(names)):
        raise ValueError("survey names must be unique")
    return surveys


class Focus(_Strict):
    """The quarter's focus: up to ``size`` items per calendar quarter (in ``insight.timezone``),
    picked by a host or one of ``leads``, announced in ``closing.announce_channel``."""

    size: Annotated[int, Field(ge=1, le=10)] = 3
    leads: list[UserId] = []


# ---------------------------------------------------------------- response targets

DURATION = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*$")


def _duration(v: str) -> str:
    m = DURATION.match(str(v))
    if not m or not any(m.groups()):
        raise ValueError(f"{v!r} is not a duration: use business days, hours and minutes such as 1d, 4h, 1d 4h, 30m")
    if not any(int(g) for g in m.groups() if g):
        raise ValueError(f"{v!r}: a target must be longer than zero")
    return str(v)


Duration = Annotated[str, AfterValidator(_duration)]  # "1d 4h": business days (one day's working hours), hours, minutes
HourRange = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d$")]


class SeverityTarget(_Strict):
    first_response: Duration | None = None
    resolution: Duration | None = None


class Escalation(_Strict):
    users: list[UserId] = []
    usergroup: UserGroupId | None = None


class Targets(_Strict):
    """First-response and resolution targets per severity, counted in business time. Off until
    ``severities`` names at least one."""

    timezone: TimeZone = "UTC"
    working_days: Annotated[list[Weekday], Field(min_length=1)] = ["mon", "tue", "wed", "thu", "fri"]
    hours: HourRange = "09:00-17:00"  # local working hours, start-end
    holidays_country: Annotated[str, Field(pattern=r"^[A-Z]{2,3}$")] | None = None  # ISO 3166 code, e.g. DE
    holidays_subdivision: Annotated[str, Field(max_length=10)] | None = None  # e.g. BE (Berlin)
    closed_dates: list[date] = []  # extra days off, YYYY-MM-DD
    warn_at: Annotated[float, Field(gt=0, lt=1)] = 0.75  # share of the target at which the assignee is warned
    escalate_to: Escalation = Escalation()  # told at a breach
    severities: dict[Literal["low", "medium", "high", "blocker"], SeverityTarget] = {}

    @model_validator(mode="after")
    def _consistent(self) -> "Targets":
        start, end = self.hours.split("-")
        if end <= start:
            raise ValueError(f"targets.hours {self.hours!r}: working hours must end after they start")
        if self.holidays_country:
            import holidays

            try:
                holidays.country_holidays(self.holidays_country, subdiv=self.holidays_subdivision)
            except NotImplementedError:
                raise ValueError(f"targets.holidays_country {self.holidays_country!r} is not a country the holidays package knows") from None
            except Exception as exc:  # holidays raises NotImplementedError or ValueError for a bad subdivision
                raise ValueError(f"targets.holidays_subdivision {self.holidays_subdivision!r}: {exc}") from None
        return self

    @property
    def enabled(self) -> bool:
        return any(t.first_response or t.resolution for t in self.severities.values())


class Policy(_Strict):
    # Installed into several workspaces (OAuth): the workspace (T...) or Enterprise Grid org (E...)
    # whose channels and people this file names. Unset: the only installation.
    workspace: Annotated[str | None, Field(pattern=r"^[TE][A-Z0-9]{2,31}$")] = None
    reference_prefix: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9]{0,9}$")] = "FB"
    intake: Intake = Intake()
    taxonomy: Taxonomy = Taxonomy()
    hosts: Hosts = Hosts()
    triage: Triage = Triage()
    office_hours: OfficeHours = OfficeHours()
    help_channel: HelpChannel = HelpChannel()
    closing: Closing = Closing()
    retention: Retention = Retention()
    insight: Insight = Insight()
    surveys: Annotated[list[Survey], AfterValidator(_unique_survey_names)] = []
    csat_followup: CsatFollowup = CsatFollowup()
    targets: Targets = Targets()
    focus: Focus = Focus()

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
        where = _where(err["loc"], raw) or "(top level)"
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"CONFIG_FILE {path}: {where}: {msg}.") from None


def _where(loc: tuple, raw) -> str:
    """The error's key path; a survey is named by its name (``surveys[pulse].schedule``), not its index."""
    parts = [str(p) for p in loc]
    if len(loc) >= 2 and loc[0] == "surveys" and isinstance(loc[1], int) and isinstance(raw, dict):
        surveys = raw.get("surveys")
        item = surveys[loc[1]] if isinstance(surveys, list) and loc[1] < len(surveys) else None
        name = item.get("name") if isinstance(item, dict) else None
        if isinstance(name, str) and name:
            parts[:2] = [f"surveys[{name}]"]
    return ".".join(parts)
