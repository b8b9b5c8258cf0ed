"""The hosts' queue (App Home and ``/platform-feedback queue``) with response targets: what is due
first comes first, breached reports at the top, and each row knows where its clocks stand.

Without targets it is the priority order of ``triage.open_queue``. With them, the open reports the
filters select (at most ``triage.open_queue``'s 2,000, a working queue) are ordered by their next
due time, reports with nothing due (paused, no target) after them in priority order.
"""

from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session

from bot.policy import Policy
from bot.targets import alerts as target_alerts
from bot.targets.service import ClockState
from bot.triage import service as triage
from storage.models import FrictionPoint, utcnow

CANDIDATES = 2000


@dataclass(frozen=True)
class QueueView:
    points: list[FrictionPoint]
    now: datetime
    by_due: bool  # ordered by what is due first (targets on), else by priority
    clocks: dict[int, tuple[ClockState, ...]] = field(default_factory=dict)  # point id -> its clocks with a target
    headline: triage.Headline | None = None


def queue(*, session: Session, policy: Policy, category: str | None = None, status: str | None = None, limit: int = 20,
          now: datetime | None = None) -> QueueView:
    """The first ``limit`` open reports, due first when targets are on."""
    now = now or utcnow()
    if not policy.targets.enabled:
        return QueueView(triage.open_queue(session=session, category=category, status=status, limit=limit), now, False)
    points = triage.open_queue(session=session, category=category, status=status, limit=CANDIDATES)
    changes = target_alerts.changes_by_point(session, [p.id for p in points])
    clocks = {p.id: target_alerts.point_clocks(p, changes.get(p.id, []), policy, now) for p in points}
    far = datetime.max.replace(tzinfo=now.tzinfo)
    # sorted() is stable: reports due at the same time, and those with nothing due, keep the priority order.
    points.sort(key=lambda p: clocks[p.id].next_due() or far)
    shown = points[:limit]
    return QueueView(shown, now, True, {p.id: clocks[p.id].states for p in shown})


def host_view(*, session: Session, policy: Policy, category: str | None, status: str | None, now: datetime | None = None) -> QueueView:
    """What a host's Home tab shows: the headline numbers and the first 40 of the filtered queue."""
    view = queue(session=session, policy=policy, category=category, status=status, limit=40, now=now)
    return QueueView(view.points, view.now, view.by_due, view.clocks, triage.headline(session=session, now=now))
