"""Tables. One friction data point can have several reporters, tags, a status history and
(later) links to tracker issues, so those live in their own tables."""

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum

from sqlalchemy import Column, DateTime, String, Text, UniqueConstraint, event
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, Relationship, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


class UtcDateTime(TypeDecorator):
    """An instant, stored as UTC on every database. PostgreSQL's ``timestamptz`` keeps an offset,
    SQLite's text drops it: a value written with a local offset (a quarter's end in
    America/Los_Angeles) would come back as that wall-clock time in UTC, hours off. So every
    value, written or compared against in a query, is converted to UTC here, in one place, and
    comes back aware, in UTC. A naive value is refused (``ValueError``): which instant it means
    cannot be known."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"an instant must be a datetime, not {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"a naive datetime is not an instant: {value.isoformat()} (give it a time zone)")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def instant(**kw):
    """A column holding an instant (``UtcDateTime``); ``Field`` keywords as given."""
    return Field(sa_type=UtcDateTime(), **kw)


def _ts(**kw):
    return instant(default_factory=utcnow, **kw)


@dataclass(frozen=True)
class Workspace:
    """Where a person is in Slack: their workspace and, on an Enterprise Grid, its org. The bot
    speaks to them through that workspace's installation, or the org's."""

    team_id: str | None = None
    enterprise_id: str | None = None


class FrictionKind(StrEnum):
    question = "question"  # a question for office hours
    support = "support"
    feedback = "feedback"  # feedback or an idea


class Severity(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    blocker = "blocker"


class Source(StrEnum):
    command = "command"  # one line of text after the slash command
    modal = "modal"  # the slash command's modal
    shortcut = "shortcut"  # the "Report platform friction" message shortcut
    reaction = "reaction"  # the configured emoji on a message
    help_channel = "help_channel"  # a top-level message in the team's help channel
    survey = "survey"  # a survey comment a host filed as friction
    dm = "dm"  # a direct message to the bot (its Messages tab)
    usage = "usage"  # a moment-of-use question's comment its author chose to file (bot.usage)


class Status(StrEnum):
    new = "new"
    acknowledged = "acknowledged"
    linked = "linked"
    resolved = "resolved"
    wont_fix = "wont_fix"
    duplicate = "duplicate"


# The status groups, one definition each (issue #24: "closed" had five copies with two meanings).
CLOSED = (Status.resolved, Status.wont_fix, Status.duplicate)
"""Closed, merged included: nobody waits on it any more. Response targets (a clock stops), the
focus (an item is fixed), Add details (refused) and retention (purged) read it."""
DECIDED = (Status.resolved, Status.wont_fix)
"""Closed on its own, merged left out: what closing the loop reads. A tracker's closure closes
every linked report not DECIDED yet, a reopen reopens only the DECIDED ones; a duplicate follows the
report it was merged into instead."""


class ChangeAction(StrEnum):
    """``FrictionChange.action``: every kind of history entry, one definition (issue #24)."""

    filed = "filed"
    assigned = "assigned"  # triage (bot.triage.service.Change)
    tagged = "tagged"
    severity = "severity"
    linked = "linked"
    merged = "merged"  # on the duplicate (``new`` its primary) and on the primary (no ``new``)
    resolved = "resolved"
    declined = "declined"
    reopened = "reopened"  # by a host or a tracker
    responded = "responded"  # a host answered in the help channel's thread
    closed = "closed"  # by a tracker's closure
    issue_deleted = "issue_deleted"  # the linked tracker issue was deleted
    still_broken = "still_broken"  # a reporter's "still broken" on a closure: a reopen when it was closed
    works_for_me = "works_for_me"
    waiting = "waiting"  # a host's question to the reporter: the response clocks pause
    answered = "answered"  # the reporter's answer: they run again
    joined = "joined"  # a help-channel follow-up appended to the question; ``new`` is its ts
    dm_answer = "dm_answer"  # the bot's answer is at ``new`` (its ts) in the reporter's DM
    added = "added"  # the reporter added ``note`` from the report's DM thread
    details = "details"  # a reporter's own change (Add details); ``note`` names the field


class FrictionPoint(SQLModel, table=True):
    __tablename__ = "friction_point"

    id: int = Field(default=None, primary_key=True)  # None until flushed; typed int: every row read or returned has one
    team_id: str = Field(max_length=32)
    filed_by: str = Field(max_length=32, description="Slack user who filed it (may differ from the reporter)")
    text: str = Field(sa_column=Column(Text, nullable=False))
    kind: FrictionKind = Field(default=FrictionKind.feedback, sa_type=String(16))
    severity: Severity = Field(default=Severity.medium, sa_type=String(16))
    minutes_lost: int | None = None
    source: Source = Field(sa_type=String(16))
    status: Status = Field(default=Status.new, sa_type=String(16), index=True)
    channel_id: str | None = Field(default=None, max_length=32)
    message_ts: str | None = Field(default=None, max_length=32)
    permalink: str | None = Field(default=None, max_length=3000)
    link_url: str | None = Field(default=None, max_length=3000)
    # What makes a retried or double-clicked intake land on the same row (a view id, a message).
    intake_key: str = Field(max_length=255, unique=True)
    duplicate_of_id: int | None = Field(default=None, foreign_key="friction_point.id", index=True)
    assignee: str | None = Field(default=None, max_length=32)
    resolution_note: str | None = Field(default=None, sa_column=Column(Text))
    # Where its triage card was posted, once it was.
    card_channel: str | None = Field(default=None, max_length=32)
    card_ts: str | None = Field(default=None, max_length=32)
    # The older open report this one most resembles and how much (rapidfuzz's 0-100), kept so that
    # redrawing its card does not compare it with hundreds of others again
    # (``bot.insight.service.card_duplicate``). Similarity None: not computed yet; 0 with no id:
    # nothing resembles it. No foreign key: the suggested report may be purged; the card then
    # looks again.
    suggested_duplicate_id: int | None = None
    suggested_similarity: float | None = None
    created_at: datetime = _ts(index=True)
    updated_at: datetime = _ts()
    first_response_at: datetime | None = instant(default=None)
    resolved_at: datetime | None = instant(default=None, index=True)

    tags: list["FrictionTag"] = Relationship(
        sa_relationship_kwargs={"lazy": "selectin", "cascade": "all, delete-orphan", "order_by": "FrictionTag.id"}
    )
    reporters: list["Reporter"] = Relationship(
        sa_relationship_kwargs={"lazy": "selectin", "cascade": "all, delete-orphan", "order_by": "Reporter.id"}
    )
    links: list["TrackerLink"] = Relationship(
        sa_relationship_kwargs={"lazy": "selectin", "cascade": "all, delete-orphan", "order_by": "TrackerLink.id"}
    )

    @property
    def categories(self) -> list[str]:
        return [t.category for t in self.tags]

    def reporter_workspace(self, user_id: str) -> Workspace | None:
        """Where the bot reaches this reporter (None: not one of its reporters)."""
        return next((r.workspace for r in self.reporters if r.user_id == user_id), None)


@event.listens_for(FrictionPoint.text, "set")
def _forget_suggestion(point: FrictionPoint, text, old, _initiator) -> None:
    """Whatever changes a report's words (Add details, a help-channel follow-up, a redaction) makes
    its kept duplicate suggestion stale: the card computes it again."""
    if text != old:
        point.suggested_similarity = None


class FrictionTag(SQLModel, table=True):
    __tablename__ = "friction_tag"
    __table_args__ = (UniqueConstraint("friction_point_id", "category"),)

    id: int = Field(default=None, primary_key=True)  # None until flushed; typed int: every row read or returned has one
    friction_point_id: int = Field(foreign_key="friction_point.id", index=True)
    category: str = Field(max_length=64, index=True)
    automatic: bool = False


class Reporter(SQLModel, table=True):
    """A person who hit this friction. Duplicates merge by moving reporters, never by losing them."""

    __tablename__ = "reporter"
    __table_args__ = (UniqueConstraint("friction_point_id", "user_id"),)

    id: int = Field(default=None, primary_key=True)  # None until flushed; typed int: every row read or returned has one
    friction_point_id: int = Field(foreign_key="friction_point.id", index=True)
    user_id: str = Field(max_length=32, index=True)
    team_id: str = Field(max_length=32)
    enterprise_id: str | None = Field(default=None, max_length=32)
    reported_at: datetime = _ts()

    @property
    def workspace(self) -> Workspace:
        return Workspace(team_id=self.team_id, enterprise_id=self.enterprise_id)


class FrictionChange(SQLModel, table=True):
    """History: who changed what, when (filed, assigned, tagged, linked, merged, resolved...)."""

    __tablename__ = "friction_change"

    id: int = Field(default=None, primary_key=True)  # None until flushed; typed int: every row read or returned has one
    friction_point_id: int = Field(foreign_key="friction_point.id", index=True)
    actor: str = Field(max_length=32)
    action: str = Field(max_length=16)  # a ChangeAction
    old: str | None = Field(default=None, max_length=255)
    new: str | None = Field(default=None, max_length=255)
    note: str | None = Field(default=None, sa_column=Column(Text))
    at: datetime = _ts()


class TrackerLink(SQLModel, table=True):
    """A tracker issue a data point is linked to, by canonical key (owner/repo#12, PROJ-123)."""

    __tablename__ = "tracker_link"
    __table_args__ = (UniqueConstraint("friction_point_id", "tracker", "key"),)

    id: int = Field(default=None, primary_key=True)  # None until flushed; typed int: every row read or returned has one
    friction_point_id: int = Field(foreign_key="friction_point.id", index=True)
    tracker: str = Field(max_length=16)
    key: str = Field(max_length=255, index=True)
    url: str = Field(max_length=3000)
    created_at: datetime = _ts()
    # The issue's state as last heard from the tracker; each closure counts, so a reopened and
    # closed-again issue notifies again, once.
    closed: bool = False
    closures: int = 0
    closed_at: datetime | None = instant(default=None)
    etag: str | None = Field(default=None, max_length=255)  # for conditional polling
    checked_at: datetime | None = instant(default=None)
    # The tracker's stable identity of the issue, filled from the first delivery or poll that
    # names it: GitHub/GitLab issue id, Jira issue id, Linear issue UUID; GitHub repository id or
    # GitLab project id. Deliveries match by these first, so renames, transfers and moves follow.
    issue_id: str | None = Field(default=None, max_length=64, index=True)
    project_id: str | None = Field(default=None, max_length=64, index=True)
    # The tracker's own time of the last state applied: older or repeated news changes nothing.
    state_at: datetime | None = instant(default=None)


class TrackerDelivery(SQLModel, table=True):
    """A verified tracker webhook, recorded before it is answered and applied after: a crash in
    between loses nothing (pending rows are applied on the next tick). ``body_sha256`` makes a
    redelivered or replayed body one row."""

    __tablename__ = "tracker_delivery"

    id: int = Field(default=None, primary_key=True)  # None until flushed; typed int: every row read or returned has one
    tracker: str = Field(max_length=16)
    body_sha256: str = Field(max_length=64, unique=True)
    events: str = Field(sa_column=Column(Text, nullable=False))  # JSON list of IssueEvent
    # Once its links are changed: the steps its events owe (bot.closing.service.Applied.steps),
    # JSON, each run in its own transaction; ``done`` of them have run. applied_at: all have.
    work: str | None = Field(default=None, sa_column=Column(Text))
    done: int = 0
    received_at: datetime = _ts(index=True)
    applied_at: datetime | None = instant(default=None, index=True)
    attempts: int = 0


class ClosureNotice(SQLModel, table=True):
    """ "You reported this, it's fixed": one per reporter per closure of an issue, and what they said back."""

    __tablename__ = "closure_notice"
    __table_args__ = (UniqueConstraint("user_id", "tracker", "key", "closure"),)

    id: int = Field(default=None, primary_key=True)  # None until flushed; typed int: every row read or returned has one
    friction_point_id: int = Field(foreign_key="friction_point.id", index=True)
    user_id: str = Field(max_length=32)
    tracker: str = Field(max_length=16)
    key: str = Field(max_length=255)
    closure: int
    outcome: str = Field(max_length=16)  # fixed | not_planned
    created_at: datetime = _ts()
    feedback: str | None = Field(default=None, max_length=16)  # works | broken
    feedback_at: datetime | None = instant(default=None)
    comment: str | None = Field(default=None, sa_column=Column(Text))


class ProcessedEvent(SQLModel, table=True):
    """Slack retries events with the same event_id; one row here means "already handled"."""

    __tablename__ = "processed_event"

    event_id: str = Field(primary_key=True, max_length=64)
    received_at: datetime = _ts()


class OutboxStatus(StrEnum):
    pending = "pending"
    sent = "sent"
    failed = "failed"


class OutboxMessage(SQLModel, table=True):
    """A Slack Web API call to make exactly once. Written in the same transaction as the change
    that calls for it, so a crash can neither lose it nor send it twice (dedupe_key)."""

    __tablename__ = "outbox_message"

    id: int = Field(default=None, primary_key=True)  # None until flushed; typed int: every row read or returned has one
    dedupe_key: str = Field(max_length=255, unique=True)
    method: str = Field(max_length=64)
    payload: str = Field(sa_column=Column(Text, nullable=False))  # JSON
    status: OutboxStatus = Field(default=OutboxStatus.pending, sa_type=String(16), index=True)
    attempts: int = 0
    not_before: datetime = _ts(index=True)
    # A sender holds a claim until this time; a crashed sender's claim simply runs out.
    claimed_until: datetime | None = instant(default=None)
    last_error: str | None = Field(default=None, max_length=255)
    friction_point_id: int | None = Field(default=None, foreign_key="friction_point.id", index=True)
    # Set when the payload is rendered at send time by a hook (e.g. "triage_card").
    purpose: str | None = Field(default=None, max_length=32)
    # The workspace whose installation sends it (several workspaces, OAuth); both None: the
    # workspace the team policy names.
    team_id: str | None = Field(default=None, max_length=32)
    enterprise_id: str | None = Field(default=None, max_length=32)
    created_at: datetime = _ts()
    sent_at: datetime | None = instant(default=None)

    @property
    def workspace(self) -> Workspace | None:
        if self.team_id is None and self.enterprise_id is None:
            return None
        return Workspace(team_id=self.team_id, enterprise_id=self.enterprise_id)


class ScheduledRun(SQLModel, table=True):
    """One occurrence of a scheduled job (an agenda, a summary, a survey run...). The unique key
    makes it run once, however many bot instances' schedulers fire for it."""

    __tablename__ = "scheduled_run"
    __table_args__ = (UniqueConstraint("job", "occurrence"),)

    id: int = Field(default=None, primary_key=True)  # None until flushed; typed int: every row read or returned has one
    job: str = Field(max_length=64)
    occurrence: datetime = instant()
    started_at: datetime = _ts()
    finished_at: datetime | None = instant(default=None)


# ------------------------------------------------------------------ pulse surveys
# Queries, and what anonymity asks of these tables, are in storage.surveys.


def _random_id() -> str:
    return uuid.uuid4().hex


class RunStatus:
    resolving = "resolving"  # finding the audience and queuing DMs (resumable)
    open = "open"
    closed = "closed"


class SurveyRun(SQLModel, table=True):
    """One sending of a survey: scheduled (``occurrence`` = the cron time) or by hand."""

    __tablename__ = "survey_run"
    __table_args__ = (UniqueConstraint("survey", "occurrence"),)

    id: int = Field(default=None, primary_key=True)  # None until flushed; typed int: every row read or returned has one
    survey: str = Field(max_length=32, index=True)
    occurrence: datetime = instant()
    manual: bool = False
    started_by: str | None = Field(default=None, max_length=32)
    # The survey's definition when the run started (JSON), so its results read right after the policy changes.
    definition: str = Field(sa_column=Column(Text, nullable=False))
    anonymous: bool = True
    deliver_now: bool = False  # by hand, "now": DMs go at once instead of at each person's delivery hour
    status: str = Field(default=RunStatus.resolving, sa_type=String(16), index=True)
    # A random nonce (hex): with the process key it gives the run's key (never stored); erased at close.
    secret: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = instant(default=None)  # who is resolving it
    recipients: int = 0
    responses: int = 0  # how many answered, counted at close (the answers of a too-small anonymous run are not kept)
    error: str | None = Field(default=None, max_length=255)  # e.g. an audience channel the bot cannot read
    started_at: datetime = _ts()
    closes_at: datetime = instant()
    closed_at: datetime | None = instant(default=None)


class SurveyRecipient(SQLModel, table=True):
    """A person asked in a run. Nothing here says what they answered, or whether: answering never
    writes this row (their answers are in ``SurveySealed`` under a pseudonym)."""

    __tablename__ = "survey_recipient"
    __table_args__ = (UniqueConstraint("run_id", "user_id"),)

    id: int = Field(default=None, primary_key=True)  # None until flushed; typed int: every row read or returned has one
    run_id: int = Field(foreign_key="survey_run.id", index=True)
    user_id: str = Field(max_length=32)
    tz: str = Field(max_length=64)
    segment: str | None = Field(default=None, max_length=48)  # "usergroup:S123" or "channel:C123"
    deliver_at: datetime = instant()
    delivered: bool = False
    reminders: int = 0  # reminders queued: the same for everyone delivered (answered or not)


class SurveySealed(SQLModel, table=True):
    """One person's answers in an open run, sealed (``bot.surveys.sealing``) under a
    pseudonym: ``slot`` is HMAC(run key, user id), and the run key is never stored, so without the
    bot's secret no row here, nor any of its versions, names anyone. Deleted at close."""

    __tablename__ = "survey_sealed"

    slot: str = Field(primary_key=True, max_length=64)  # hex
    run_id: int = Field(foreign_key="survey_run.id", index=True)
    sealed: str = Field(sa_column=Column(Text, nullable=False))


class SurveyResponse(SQLModel, table=True):
    """One person's answers in one run, without the person (see the module docstring); written at close."""

    __tablename__ = "survey_response"

    id: str = Field(default_factory=_random_id, primary_key=True, max_length=32)
    run_id: int = Field(foreign_key="survey_run.id", index=True)
    user_id: str | None = Field(default=None, max_length=32)  # only when the survey is not anonymous
    segment: str | None = Field(default=None, max_length=48)  # generalised at close if the group is small
    comment: str | None = Field(default=None, sa_column=Column(Text))


class SurveyAnswer(SQLModel, table=True):
    __tablename__ = "survey_answer"

    response_id: str = Field(foreign_key="survey_response.id", primary_key=True, max_length=32)
    question: str = Field(primary_key=True, max_length=32)
    score: int | None = None  # nps 0-10, csat 1-5
    choice: str | None = Field(default=None, max_length=75)
    text: str | None = Field(default=None, sa_column=Column(Text))


class SurveyOptOut(SQLModel, table=True):
    """``/platform-feedback surveys off``: no survey DMs for this person until ``surveys on``."""

    __tablename__ = "survey_opt_out"

    user_id: str = Field(primary_key=True, max_length=32)
    at: datetime = _ts()


class CsatFollowup(SQLModel, table=True):
    """"Did this solve your problem?" asked of a reporter after a host resolved their report."""

    __tablename__ = "csat_followup"
    __table_args__ = (UniqueConstraint("friction_change_id", "user_id"),)

    id: int = Field(default=None, primary_key=True)  # None until flushed; typed int: every row read or returned has one
    # Purging a report (storage.privacy) takes its follow-ups with it.
    friction_point_id: int = Field(foreign_key="friction_point.id", index=True, ondelete="CASCADE")
    friction_change_id: int = Field(foreign_key="friction_change.id", ondelete="CASCADE")
    user_id: str = Field(max_length=32)
    asked_at: datetime = _ts(index=True)
    score: int | None = None
    answered_at: datetime | None = instant(default=None)


class SeenRequest(SQLModel, table=True):
    """A signed Slack request already applied, by its ``X-Slack-Signature`` (``storage.replays``):
    the same signature again within Slack's five-minute window is a replay."""

    __tablename__ = "seen_request"

    signature: str = Field(primary_key=True, max_length=80)  # "v0=" and 64 hex digits
    expires_at: datetime = instant(index=True)


# ------------------------------------------------------------------ usage events (bot.usage)
# Queries in storage.usage. Nothing personal beyond a Slack user id: an event sent with an email
# keeps it in ``pending_email`` only until users.lookupByEmail answered (then it is erased).


class UsageEvent(SQLModel, table=True):
    """One use of a platform capability, sent by the platform's own tools (a CI step, a deploy CLI)."""

    __tablename__ = "usage_event"

    id: int = Field(default=None, primary_key=True)  # None until flushed; typed int: every row read or returned has one
    key: str = Field(max_length=128, unique=True)  # the caller's id: the same event sent twice is stored once
    capability: str = Field(max_length=32, index=True)
    user_id: str | None = Field(default=None, max_length=32, index=True)  # None only while the email is looked up
    pending_email: str | None = Field(default=None, max_length=254)
    at: datetime = instant(index=True)
    outcome: str = Field(max_length=8)  # "ok" | "failed"
    duration_ms: int | None = None
    subject: str | None = Field(default=None, max_length=100)
    received_at: datetime = _ts()
    settled: bool = Field(default=False, index=True)  # the after-ack work (lookup, CSAT decision) is done


class UsageWindow(SQLModel, table=True):
    """The moment-of-use CSAT answers of one capability for one ISO week: sealed while open (as a
    pulse-survey run's, ``bot.surveys.sealing``), written without people at close."""

    __tablename__ = "usage_window"
    __table_args__ = (UniqueConstraint("capability", "week_start"),)

    id: int = Field(default=None, primary_key=True)  # None until flushed; typed int: every row read or returned has one
    capability: str = Field(max_length=32)
    week_start: datetime = instant()  # Monday 00:00 UTC of the ISO week the questions were asked in
    closes_at: datetime = instant(index=True)
    status: str = Field(default="open", sa_type=String(16), index=True)
    secret: str | None = Field(default=None, max_length=64)  # the nonce of the window's key; erased at close
    answers: int = 0  # counted at close (a window under the minimum group keeps only this)


class UsageAsk(SQLModel, table=True):
    """A moment-of-use question sent (or waiting for the end of quiet hours) to a person. Answering
    never writes this row."""

    __tablename__ = "usage_ask"

    id: int = Field(default=None, primary_key=True)  # None until flushed; typed int: every row read or returned has one
    event_id: int = Field(foreign_key="usage_event.id", unique=True)
    window_id: int = Field(foreign_key="usage_window.id", index=True)
    user_id: str = Field(max_length=32, index=True)
    capability: str = Field(max_length=32)
    asked_at: datetime = instant(index=True)  # when it was decided (the use); the per-person cap counts from here
    deliver_at: datetime = instant()  # after quiet hours in the person's time zone


class UsageSealed(SQLModel, table=True):
    """One person's answer in an open window, sealed under a pseudonym (HMAC of the window key). Deleted at close."""

    __tablename__ = "usage_sealed"

    slot: str = Field(primary_key=True, max_length=64)
    window_id: int = Field(foreign_key="usage_window.id", index=True)
    sealed: str = Field(sa_column=Column(Text, nullable=False))


class UsageAnswer(SQLModel, table=True):
    """A moment-of-use answer, without the person or a time; written at close in random order."""

    __tablename__ = "usage_answer"

    id: str = Field(default_factory=_random_id, primary_key=True, max_length=32)
    window_id: int = Field(foreign_key="usage_window.id", index=True)
    score: int
    comment: str | None = Field(default=None, sa_column=Column(Text))


class UsageAudienceMember(SQLModel, table=True):
    """The developer audience (``usage.audience``: user groups' and channels' members) as Slack last
    said, replaced whole by each refresh (``bot.usage.adoption.refresh_audience``): the share of it
    that used a capability is counted in SQL, and ``report`` needs no Slack to show it."""

    __tablename__ = "usage_audience"

    user_id: str = Field(primary_key=True, max_length=32)
    seen_at: datetime = _ts()


# ------------------------------------------------------------------ issue #28: create from the card, progress


class IssueIntent(SQLModel, table=True):
    """A host's "create this report's issue in that project", written before the tracker is asked
    (``bot.issue_create.service``). One per report and project: a double click, a retried request
    or a second instance finds this row, and a try after one that may have created the issue
    first searches the tracker for ``marker`` (written into the issue's body). ``state``: pending
    (a call is under way since ``claimed_at``), failed (``error`` says why; nothing was made),
    linked (``key``/``url``/ids: the issue exists and the report is linked to it)."""

    __tablename__ = "issue_intent"
    __table_args__ = (UniqueConstraint("friction_point_id", "tracker", "project"),)

    id: int = Field(default=None, primary_key=True)  # None until flushed; typed int: every row read or returned has one
    friction_point_id: int = Field(foreign_key="friction_point.id", index=True, ondelete="CASCADE")  # purged with its report
    tracker: str = Field(max_length=16)
    project: str = Field(max_length=255)
    state: str = Field(default="pending", max_length=16)
    attempts: int = 0
    actor: str = Field(max_length=32)
    title: str = Field(max_length=255)
    body: str = Field(sa_column=Column(Text, nullable=False))
    labels: str = Field(default="[]", sa_column=Column(Text, nullable=False))  # JSON list of strings
    issue_type: str | None = Field(default=None, max_length=64)
    marker: str = Field(max_length=64)
    key: str | None = Field(default=None, max_length=255)
    url: str | None = Field(default=None, max_length=3000)
    issue_id: str | None = Field(default=None, max_length=64)
    project_id: str | None = Field(default=None, max_length=64)
    error: str | None = Field(default=None, sa_column=Column(Text))
    claimed_at: datetime | None = instant(default=None)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class LinkStart(SQLModel, table=True):
    """A linked issue's work started (``bot.progress``): once per link, forward only. Removed with
    its link (a deleted issue, a purged report): a later link that reuses the id starts afresh."""

    __tablename__ = "link_start"

    link_id: int = Field(primary_key=True, foreign_key="tracker_link.id", ondelete="CASCADE")
    friction_point_id: int = Field(index=True)
    started_at: datetime = _ts()


class ProgressNotice(SQLModel, table=True):
    """ "The platform team started on FB-12": one per reporter and issue, however often it starts."""

    __tablename__ = "progress_notice"
    __table_args__ = (UniqueConstraint("user_id", "tracker", "issue"),)

    id: int = Field(default=None, primary_key=True)  # None until flushed; typed int: every row read or returned has one
    friction_point_id: int = Field(foreign_key="friction_point.id", index=True, ondelete="CASCADE")  # purged with its report
    user_id: str = Field(max_length=32, index=True)
    tracker: str = Field(max_length=16)
    issue: str = Field(max_length=255)  # the issue's stable id, or its key when none is known
    created_at: datetime = _ts()


class ProgressUpdate(SQLModel, table=True):
    """An update the team relays to a report's reporters (a marked tracker comment, or
    ``/platform-feedback update``), sent in the next daily batch (``sent_at``). ``origin`` makes
    a redelivered comment or a retried command one row."""

    __tablename__ = "progress_update"

    id: int = Field(default=None, primary_key=True)  # None until flushed; typed int: every row read or returned has one
    friction_point_id: int = Field(foreign_key="friction_point.id", index=True, ondelete="CASCADE")  # purged with its report
    origin: str = Field(max_length=255, unique=True)
    actor: str = Field(max_length=64)
    text: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = _ts()
    sent_at: datetime | None = instant(default=None, index=True)
