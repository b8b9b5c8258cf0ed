"""Queries on friction data points."""

from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from storage.database import insert_unique
from storage.models import (
    ChangeAction,
    FrictionChange,
    FrictionKind,
    FrictionPoint,
    FrictionTag,
    ProcessedEvent,
    Reporter,
    Severity,
    Source,
    Workspace,
    utcnow,
)


@dataclass(frozen=True)
class FrictionDraft:
    """Everything an intake surface collected, before it becomes a data point."""

    team_id: str
    filed_by: str
    reporter_id: str
    text: str
    source: Source
    intake_key: str
    categories: tuple[str, ...] = ()
    auto_categories: tuple[str, ...] = ()
    severity: Severity = Severity.medium
    minutes_lost: int | None = None
    kind: FrictionKind = FrictionKind.feedback
    link_url: str | None = None
    channel_id: str | None = None
    message_ts: str | None = None
    permalink: str | None = None
    enterprise_id: str | None = None  # the reporter's Enterprise Grid org

    @property
    def workspace(self) -> Workspace:
        """The reporter's workspace, whose installation answers them."""
        return Workspace(team_id=self.team_id, enterprise_id=self.enterprise_id)


@dataclass
class Filed:
    point: FrictionPoint
    created: bool  # False: the same intake arrived again (retry, double submit)
    new_reporter: bool = field(default=True)


def file_friction(*, session: Session, draft: FrictionDraft) -> Filed:
    """Create the data point for ``draft``, or return the one its ``intake_key`` already made."""
    point = FrictionPoint(
        team_id=draft.team_id,
        filed_by=draft.filed_by,
        text=draft.text,
        kind=draft.kind,
        severity=draft.severity,
        minutes_lost=draft.minutes_lost,
        source=draft.source,
        channel_id=draft.channel_id,
        message_ts=draft.message_ts,
        permalink=draft.permalink,
        link_url=draft.link_url,
        intake_key=draft.intake_key,
    )
    point.tags = _tags(draft)
    # A new point's children get its id from the relationship at the flush. SQLModel's table models
    # take no required field; the pydantic mypy plugin reads friction_point_id as one (hence the ignores).
    point.reporters = [Reporter(user_id=draft.reporter_id, team_id=draft.team_id, enterprise_id=draft.enterprise_id)]  # type: ignore[call-arg]
    if not insert_unique(session, point):
        # The same intake again (Slack's retry, a double submit, another instance that won the race):
        # the data point is the one already there. Tried in this order because nearly every intake is new.
        existing = session.exec(select(FrictionPoint).where(FrictionPoint.intake_key == draft.intake_key)).one()
        added = add_reporter(session=session, point=existing, user_id=draft.reporter_id, workspace=draft.workspace)
        return Filed(existing, created=False, new_reporter=added)
    session.add(FrictionChange(friction_point_id=point.id, actor=draft.filed_by, action=ChangeAction.filed, new=point.status))
    return Filed(point, created=True)


def _tags(draft: FrictionDraft) -> list[FrictionTag]:
    """A new point's tags (their friction_point_id from the point, at the flush: see file_friction)."""
    chosen = [FrictionTag(category=c, automatic=False) for c in dict.fromkeys(draft.categories)]  # type: ignore[call-arg]
    if chosen:
        return chosen
    return [FrictionTag(category=c, automatic=True) for c in dict.fromkeys(draft.auto_categories)]  # type: ignore[call-arg]


def add_reporter(*, session: Session, point: FrictionPoint, user_id: str, workspace: Workspace) -> bool:
    if any(r.user_id == user_id for r in point.reporters):
        return False
    reporter = Reporter(friction_point_id=point.id, user_id=user_id, team_id=workspace.team_id or "", enterprise_id=workspace.enterprise_id)
    # False: the same person, added by a concurrent retry.
    added = insert_unique(session, reporter)
    session.refresh(point, ["reporters"])
    return added


def update_details(*, session: Session, point_id: int, draft: FrictionDraft) -> FrictionPoint | None:
    """The "add details" modal on a one-line report: the person's own answers replace the guesses."""
    point = session.get(FrictionPoint, point_id)
    if point is None:
        return None
    point.text = draft.text
    point.severity = draft.severity
    point.minutes_lost = draft.minutes_lost
    point.kind = draft.kind
    point.link_url = draft.link_url
    if draft.categories:
        point.tags.clear()
        session.flush()
        point.tags.extend(FrictionTag(friction_point_id=point.id, category=c, automatic=False) for c in dict.fromkeys(draft.categories))
    point.updated_at = utcnow()
    session.add(point)
    session.flush()
    return point


def set_permalink(*, session: Session, point_id: int, permalink: str) -> None:
    point = session.get(FrictionPoint, point_id)
    if point is not None and not point.permalink:
        point.permalink = permalink
        session.add(point)


def set_card(*, session: Session, point_id: int, channel: str, ts: str) -> None:
    point = session.get(FrictionPoint, point_id)
    if point is not None:
        point.card_channel, point.card_ts = channel, ts
        session.add(point)


def get_point(*, session: Session, point_id: int) -> FrictionPoint | None:
    return session.get(FrictionPoint, point_id)


def reports_of(*, session: Session, user_id: str, limit: int = 20) -> list[FrictionPoint]:
    """The data points ``user_id`` reported, newest first."""
    stmt = (
        select(FrictionPoint)
        .join(Reporter, col(Reporter.friction_point_id) == FrictionPoint.id)
        .where(Reporter.user_id == user_id)
        .order_by(col(FrictionPoint.created_at).desc(), col(FrictionPoint.id).desc())
        .limit(limit)
    )
    return list(session.exec(stmt).all())


def first_delivery(*, session: Session, event_id: str) -> bool:
    """True the first time ``event_id`` is seen; False for Slack's retries of it."""
    return insert_unique(session, ProcessedEvent(event_id=event_id))
