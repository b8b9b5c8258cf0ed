"""The daily batch of relayed updates: each report's pending ``progress_update`` rows go out as
one DM per reporter (merged duplicates' reporters included), so nobody gets more than one such DM
per report a day. A scheduled job (``Job``/``Scheduler``: one instance claims each day), at
``issues.progress.update_hour`` UTC; ``platform-feedback run-job progress.updates`` runs it now.
(The started notices ride on tracker deliveries: ``bot.closing.service`` hands those events to
``bot.progress.service``; ``/platform-feedback update`` is wired with the create-issue commands.)"""

from datetime import datetime
from functools import partial

from apscheduler.triggers.cron import CronTrigger
from sqlmodel import Session, col, select

from bot.closing.service import _reporters
from bot.policy import Policy
from bot.progress.blocks import build_updates_digest
from bot.references import format_ref
from bot.runtime.context import Deps
from bot.runtime.scheduler import Job
from storage import outbox
from storage.models import FrictionPoint, ProgressUpdate, utcnow

JOB = "progress.updates"
BATCH = 500  # reports per run (the rest go the next day; a day's updates are rarely that many)


def schedule(deps: Deps) -> None:
    """Add the daily job to ``deps.scheduler``, or say why it is off (no relayed updates in the team policy)."""
    progress = deps.policy.issues.progress
    if not progress.updates:
        deps.scheduler.off[JOB] = "issues.progress.updates is false in the team policy"
        return
    hour = progress.update_hour
    deps.scheduler.add(
        Job(name=JOB, db=deps.db, work=partial(send_updates, policy=deps.policy), after=deps.sender.wake,
            occurrence_at=partial(_at_hour, hour)),
        CronTrigger(hour=hour, minute=0, timezone="UTC"),
    )


def _at_hour(hour: int, now: datetime) -> datetime:
    """The day's occurrence a firing at ``now`` stands for: that day at ``hour``:00."""
    return now.replace(hour=hour, minute=0, second=0, microsecond=0)


def send_updates(*, session: Session, occurrence: datetime, policy: Policy) -> int:
    """Queue the day's update DMs; returns how many reports had updates. The DM's dedupe key
    names the report, the reporter and the day: even a second run the same day sends nothing more."""
    pending = session.exec(select(ProgressUpdate).where(col(ProgressUpdate.sent_at).is_(None))
                           .order_by(col(ProgressUpdate.friction_point_id), col(ProgressUpdate.id))).all()
    by_point: dict[int, list[ProgressUpdate]] = {}
    for row in pending:
        by_point.setdefault(row.friction_point_id, []).append(row)
    day, now, messages = occurrence.date().isoformat(), utcnow(), []
    for point_id in list(by_point)[:BATCH]:
        rows = by_point[point_id]
        for row in rows:
            row.sent_at = now
            session.add(row)
        point = session.get(FrictionPoint, point_id)
        if point is None:
            continue
        link = next(((ln.key, ln.url) for ln in point.links), None)
        owners = _reporters(session, [point_id])
        own = {p.id: p for p in session.exec(select(FrictionPoint).where(col(FrictionPoint.id).in_(set(owners.values()))))}
        for user, their_point in owners.items():
            mine = own.get(their_point, point)
            ref = format_ref(policy.reference_prefix, mine.id)
            messages.append(dict(dedupe_key=f"progress-updates:{point_id}:{user}:{day}", method="chat.postMessage",
                                 payload={"channel": user, **build_updates_digest(ref, mine, [r.text for r in rows], link)},
                                 friction_point_id=point_id, workspace=mine.reporter_workspace(user) or point.reporter_workspace(user)))
    outbox.enqueue_many(session=session, messages=messages)
    return len(by_point)
