"""``platform-feedback demo``: a finished quarter's focus in the sample, so the dashboard shows one.

The quarter before the current one (in ``insight.timezone``): ten days in, a host picks the two
reports most people had raised in the month before and the area whose friction was falling, with
their real baselines (``bot.focus.service.pick``, so the pulse before is the survey run that
had closed by then); the focus is published; both reports get a tracker issue closed as fixed
during the quarter, and every one of their reporters a closure notice. The pulse after is the last
run closed before the quarter ended. Nothing is queued for Slack: the demo has none.
"""

from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from bot.focus import service as focus
from bot.policy import Policy
from bot.trackers import parse_issue_url
from storage import focus as store
from storage.models import ChangeAction, ClosureNotice, FrictionChange, FrictionPoint, Status, TrackerLink

HOST = "U0HOSTAMRA"
AREA_PREFERENCE = ("deploys", "docs", "environments", "observability")  # falling or steady in the sample: a visible "after"


def seed_focus(*, session: Session, now: datetime, policy: Policy) -> str:
    """Add the finished focus period; returns a line for the demo's summary."""
    zone = policy.insight.timezone
    _key, current_start, _end = focus.period_for(now, zone)
    key, start, end = focus.period_for(current_start - timedelta(seconds=1), zone)
    picked_at = start + timedelta(days=10, hours=10)
    if store.get_period(session=session, key=key) is not None:
        return f"focus {key} already there"
    window = picked_at - timedelta(days=policy.insight.window_days)
    recent = session.exec(select(FrictionPoint).where(col(FrictionPoint.created_at) >= window, col(FrictionPoint.created_at) < picked_at,
                                                      col(FrictionPoint.duplicate_of_id).is_(None))).all()
    chosen = sorted(recent, key=lambda p: (-len(p.reporters), p.id))[:2]
    for point in chosen:
        _reopen(session, point, picked_at)
    for point in chosen:
        focus.pick(session=session, policy=policy, actor=HOST, subject=focus.Subject("report", str(point.id)), now=picked_at)
    area = next((a for a in AREA_PREFERENCE if policy.taxonomy.has(a)), None)
    if area is not None:
        focus.pick(session=session, policy=policy, actor=HOST, subject=focus.Subject("area", area), now=picked_at)
    period = store.get_period(session=session, key=key)
    assert period is not None  # the picks above opened it
    period.published_at, period.published_by = picked_at + timedelta(hours=1), HOST
    session.add(period)
    told = sum(_fix(session, point, picked_at + timedelta(days=19 + 23 * n), 9100 + n) for n, point in enumerate(chosen))
    return f"focus {key}: {len(chosen)} reports{' and an area' if area else ''}, {told} reporters told they were fixed"


def _reopen(session: Session, point: FrictionPoint, at: datetime) -> None:
    """As it stood when picked: open, its earlier closure (if any) undone."""
    later = select(FrictionChange).where(FrictionChange.friction_point_id == point.id, col(FrictionChange.at) >= at)
    notices = select(ClosureNotice).where(ClosureNotice.friction_point_id == point.id)
    for row in [*point.links, *session.exec(notices).all(), *session.exec(later).all()]:
        session.delete(row)
    session.flush()
    session.expire(point, ["links"])
    point.status, point.resolved_at, point.resolution_note = Status.acknowledged, None, None
    session.add(point)


def _fix(session: Session, point: FrictionPoint, closed_at: datetime, number: int) -> int:
    """Link ``point`` to an issue closed as fixed at ``closed_at``; every reporter told. Returns how many."""
    issue = parse_issue_url(f"https://github.com/acme/platform/issues/{number}")
    assert issue is not None  # a GitHub issue URL always parses
    linked_at = closed_at - timedelta(days=12)
    session.add(TrackerLink(friction_point_id=point.id, tracker=issue.tracker, key=issue.key, url=issue.url, created_at=linked_at,
                            closed=True, closures=1, closed_at=closed_at))
    session.add(FrictionChange(friction_point_id=point.id, actor=HOST, action=ChangeAction.linked, new=f"{issue.tracker}:{issue.key}",
                               note=issue.url, at=linked_at))
    session.add(FrictionChange(friction_point_id=point.id, actor=f"tracker:{issue.tracker}", action=ChangeAction.closed, old=Status.linked,
                               new=Status.resolved, note=issue.url, at=closed_at))
    point.status, point.resolved_at, point.updated_at = Status.resolved, closed_at, closed_at
    session.add(point)
    people = sorted({r.user_id for r in point.reporters})
    for user in people:
        session.add(ClosureNotice(friction_point_id=point.id, user_id=user, tracker=issue.tracker, key=issue.key, closure=1,
                                  outcome="fixed", created_at=closed_at))
    session.flush()
    return len(people)
