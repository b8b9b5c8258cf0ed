"""Progress to reporters: work on a linked issue started, and the team's relayed updates.

**Started** (a tracker's ``Outcome.started`` event: GitHub assigned or a pull request naming the
issue opened; GitLab assigned or a merge request opened; Jira status category In Progress; Linear
a ``started`` state). It reaches the links through ``closing.apply_issue_event`` like any tracker
event, which hands it to ``steps_for``: each open link starts once (``link_start``, forward only:
a closed link does not start, a started one does not start again), and for the links that started
now the steps are: redraw their reports' cards (the stage shows "in progress"), and one
``progress_notice`` per reporter of those reports and of the duplicates merged into them, unique
per reporter and issue, each queued as one DM keyed by the notice. Replays, redeliveries and later
start events (reassigned, a second pull request) find the link started and owe nothing.

**Updates** (``Outcome.update``: a tracker comment starting with the policy's marker; or a host's
``/platform-feedback update FB-12 <text>``) are kept as ``progress_update`` rows (one per comment
or command: ``origin``), and the daily job (``bot.progress.jobs``) sends each report's pending
updates as one DM per reporter.

``policy.issues.progress.start_notices`` / ``updates`` off: no started DM is queued (the stage
still moves) / no update is read or accepted.
"""

import hashlib

from sqlmodel import Session, col, select

from bot.closing.audience import CHUNK
from bot.closing.audience import reporters as _reporters
from bot.closing.audience import targets as _targets
from bot.progress.blocks import build_started_notice
from bot.references import format_ref
from bot.trackers import IssueEvent, Outcome
from bot.triage.service import sync_cards
from storage import outbox
from storage.database import insert_or_skip
from storage.models import FrictionPoint, LinkStart, ProgressNotice, ProgressUpdate, TrackerLink, utcnow


def _chunks(items: list) -> list[list]:
    return [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)]


def steps_for(*, session: Session, event: IssueEvent, links: list[TrackerLink], index: int = 0) -> list[dict]:
    """What a started or update event owes (``closing.Applied.steps``, run by ``run_step``)."""
    if event.outcome == Outcome.update:
        return [dict(do="relay", event=index, points=c) for c in _chunks(_targets(session, links))]
    fresh = [ln for ln in links if not ln.closed]
    if not fresh:
        return []
    now = utcnow()
    stmt = insert_or_skip(session, LinkStart).returning(LinkStart.link_id)
    started = set(session.execute(stmt, [dict(link_id=ln.id, friction_point_id=ln.friction_point_id, started_at=now)
                                         for ln in fresh]).scalars().all())
    new = [ln for ln in fresh if ln.id in started]
    if not new:
        return []
    points = _targets(session, new)
    issue = next((ln.issue_id for ln in new if ln.issue_id), None) or event.issue_id or new[0].key
    owners = [[user, point] for user, point in _reporters(session, points).items()]
    steps = [dict(do="started", event=index, points=c) for c in _chunks(points)]
    steps += [dict(do="start_notice", event=index, issue=issue, owners=c) for c in _chunks(owners)]
    return steps


def run_started(session: Session, event: IssueEvent, step: dict, policy) -> None:
    """The reports' cards redrawn: their stage is "in progress" now."""
    rows = session.exec(select(FrictionPoint.id).where(col(FrictionPoint.id).in_(step["points"]),
                                                       col(FrictionPoint.card_ts).is_not(None))).all()
    sync_cards(session=session, point_ids=list(rows), why=f"started:{event.tracker}:{event.key}")


def run_start_notice(session: Session, event: IssueEvent, step: dict, policy) -> None:
    """One notice per reporter and issue, each queued as a DM once (keyed by the notice)."""
    if not policy.issues.progress.start_notices:
        return
    now = utcnow()
    rows = [dict(friction_point_id=point, user_id=user, tracker=str(event.tracker), issue=str(step["issue"])[:255], created_at=now)
            for user, point in step["owners"]]
    stmt = insert_or_skip(session, ProgressNotice).returning(ProgressNotice.id, ProgressNotice.user_id)
    made = dict((user, notice) for notice, user in session.execute(stmt, rows).all())
    if not made:
        return
    points = {p.id: p for p in session.exec(select(FrictionPoint).where(col(FrictionPoint.id).in_({r["friction_point_id"] for r in rows})))}
    messages = []
    for row in rows:
        point = points.get(row["friction_point_id"])
        if row["user_id"] not in made or point is None:
            continue
        ref = format_ref(policy.reference_prefix, point.id)
        messages.append(dict(dedupe_key=f"progress-started:{made[row['user_id']]}", method="chat.postMessage",
                             payload={"channel": row["user_id"], **build_started_notice(ref, point, event.key, event.url)},
                             friction_point_id=point.id, workspace=point.reporter_workspace(row["user_id"])))
    outbox.enqueue_many(session=session, messages=messages)


def run_relay(session: Session, event: IssueEvent, step: dict, policy) -> None:
    """Keep a marked tracker comment as an update of each report (one row per comment and report)."""
    if not policy.issues.progress.updates or not event.note:
        return
    origin = event.note_id or hashlib.sha256(f"{event.key}:{event.at}:{event.note}".encode()).hexdigest()[:32]
    rows = [dict(friction_point_id=point, origin=f"{event.tracker}:{origin}:{point}"[:255], actor=f"tracker:{event.tracker}",
                 text=event.note[:3000], created_at=utcnow()) for point in step["points"]]
    if rows:
        session.execute(insert_or_skip(session, ProgressUpdate), rows)


STEPS = {"started": run_started, "start_notice": run_start_notice, "relay": run_relay}


# ------------------------------------------------------------------ a host's update


class UpdateRefused(ValueError):
    """One line for the host: why the update was not kept."""


def record_host_update(*, session: Session, policy, point_id: int, actor: str, text: str, day: str) -> bool:
    """Keep a host's update for the report's reporters (the canonical report when ``point_id`` was
    merged). False: the same words for the same report today were kept already. Raises
    ``UpdateRefused`` when updates are off or the report is gone."""
    if not policy.issues.progress.updates:
        raise UpdateRefused("Relayed updates are turned off (issues.progress.updates in the policy).")
    point = session.get(FrictionPoint, point_id)
    if point is None:
        raise UpdateRefused(f"{format_ref(policy.reference_prefix, point_id)} does not exist.")
    if point.duplicate_of_id is not None:
        point = session.get(FrictionPoint, point.duplicate_of_id) or point
    digest = hashlib.sha256(f"{actor}\n{text}".encode()).hexdigest()[:24]
    stmt = insert_or_skip(session, ProgressUpdate).returning(ProgressUpdate.id)
    made = session.execute(stmt, [dict(friction_point_id=point.id, origin=f"slack:{point.id}:{day}:{digest}", actor=actor,
                                       text=text[:3000], created_at=utcnow())]).first()
    return made is not None

