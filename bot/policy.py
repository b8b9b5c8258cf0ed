"""The team policy's model: what one YAML file (``platform-feedback.yml``; the commented example is
``bot/examples/platform-feedback.example.yml``) may say, validated by pydantic. Reading the file and
turning a bad value into one line that names the setting is ``bot.runtime.config.load_policy``; the
environment's settings (secrets, the database) are ``bot.runtime.settings``.

The model lives in the domain, below the runtime (issue #24): features read their sections of it,
and each feature's own section (``bot.usage.policy``, ``bot.issue_create.policy``) sits beside it.
"""

import re
from datetime import date
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.issue_create.policy import IssuePolicy
from bot.slack_ids import ChannelId, UserGroupId, UserId  # a name where an id belongs: one line saying where the id is
from bot.usage.policy import UsagePolicy, check_areas


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




def _zone(v: str) -> str:
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {v!r} (use an IANA name such as Europe/Berlin)") from None
    return v


TimeZone = Annotated[str, AfterValidator(_zone)]  # an IANA name, e.g. Europe/Berlin


class Hosts(_Strict):
    users: list[UserId] = []
    usergroup: UserGroupId | None = None
    refresh_minutes: Annotated[int, Field(ge=1, le=1440)] = 10


class Triage(_Strict):
    channel: ChannelId | None = None  # where each new report's card is posted


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
        from bot import cron

        try:
            cron.trigger(v)
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

            from bot import cron

            trigger = cron.trigger(self.schedule, timezone=self.timezone)
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
    usage: UsagePolicy = UsagePolicy()  # usage events, adoption, moment-of-use CSAT (bot.usage)
    issues: IssuePolicy = IssuePolicy()  # creating issues from cards, progress to reporters (bot/issue_create/policy.py)

    @model_validator(mode="after")
    def _distinct_reactions(self) -> "Policy":
        from bot.emoji_names import canonical  # thumbsup is +1: one emoji, whatever its name

        check_areas(self.usage, self.taxonomy)

        if self.help_channel.channel and canonical(self.help_channel.resolve_reaction) == canonical(self.intake.reaction):
            raise ValueError("help_channel.resolve_reaction must differ from intake.reaction (one files, the other resolves)")
        return self
