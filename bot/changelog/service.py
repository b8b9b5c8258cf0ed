"""The weekly "you said, we did" changelog (policy ``closing.announce: weekly``): the week's fixes,
each a linked tracker issue closed as done, with how many people had reported it.

A fix is read from the closure notices (one per reporter per closure, outcome ``fixed``) created in
the week: the people told it was fixed are the people who reported it. One post per week, however
many instances run: the scheduler's claim on the occurrence, and a dedupe key derived from it.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from bot.changelog.blocks import build_changelog
from bot.policy import Policy
from storage import outbox
from storage.focus import FocusItem, FocusPeriod
from storage.models import ClosureNotice, FrictionPoint, FrictionTag, TrackerLink

JOB = "closing.changelog"
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
EARLY_TOLERANCE = timedelta(seconds=60)  # a firing this early still counts for the coming occurrence


@dataclass(frozen=True)
class Fix:
    tracker: str
    key: str  # canonical: owner/repo#12, PROJ-123
    url: str | None
    points: tuple[tuple[int, str], ...]  # (data point id, its text), oldest first
    reporters: int  # distinct people told it was fixed, i.e. who had reported it
    at: datetime  # when the bot heard of the closure (UTC)
    focus: bool = False  # one of its reports (or their area) was in a focus period overlapping the week


def fixes(*, session: Session, start: datetime, end: datetime) -> list[Fix]:
    """Issues closed as done whose closure the bot heard of in [start, end), most reporters first."""
    notices = session.exec(select(ClosureNotice).where(ClosureNotice.outcome == "fixed", ClosureNotice.created_at >= start,
                                                       ClosureNotice.created_at < end)).all()
    grouped: dict[tuple[str, str], list[ClosureNotice]] = defaultdict(list)
    for notice in notices:
        grouped[(notice.tracker, notice.key)].append(notice)
    point_ids = {n.friction_point_id for n in notices}
    texts = dict(session.exec(select(FrictionPoint.id, FrictionPoint.text).where(col(FrictionPoint.id).in_(point_ids))).all()) if point_ids else {}
    urls = {(link.tracker, link.key): link.url for link in session.exec(
        select(TrackerLink).where(col(TrackerLink.friction_point_id).in_(point_ids))).all()} if point_ids else {}
    focused = _focused(session, point_ids, start, end)
    result = [
        Fix(tracker=tracker, key=key, url=urls.get((tracker, key)),
            points=tuple((pid, texts.get(pid, "")) for pid in sorted({n.friction_point_id for n in group})),
            reporters=len({n.user_id for n in group}), at=max(n.created_at for n in group),
            focus=any(n.friction_point_id in focused for n in group))
        for (tracker, key), group in grouped.items()
    ]
    return sorted(result, key=lambda f: (-f.reporters, f.key))


def _focused(session: Session, point_ids: set[int], start: datetime, end: datetime) -> set[int]:
    """Which of ``point_ids`` were in a focus (storage.focus: "report:ID", merged duplicates
    included, or "area:ID") of a period overlapping [start, end)."""
    if not point_ids:
        return set()
    periods = select(FocusPeriod.id).where(FocusPeriod.starts_at < end, FocusPeriod.ends_at > start)
    subjects = set(session.exec(select(FocusItem.subject).where(col(FocusItem.period_id).in_(periods))).all())
    if not subjects:
        return set()
    canonical = dict(session.exec(select(FrictionPoint.id, FrictionPoint.duplicate_of_id).where(col(FrictionPoint.id).in_(point_ids))).all())
    areas = defaultdict(set)
    for pid, category in session.exec(select(FrictionTag.friction_point_id, FrictionTag.category).where(
            col(FrictionTag.friction_point_id).in_(point_ids))).all():
        areas[pid].add(category)
    return {pid for pid in point_ids
            if f"report:{pid}" in subjects or f"report:{canonical.get(pid)}" in subjects
            or any(f"area:{a}" in subjects for a in areas[pid])}


def latest_slot(now: datetime, weekday: str, hhmm: str, zone: str) -> datetime:
    """The latest ``weekday`` at ``hhmm`` in time zone ``zone`` at or before ``now`` (+1 min), in UTC:
    the weekly occurrence a firing at ``now`` stands for."""
    tz = ZoneInfo(zone)
    local = (now + EARLY_TOLERANCE).astimezone(tz)
    hour, minute = (int(x) for x in hhmm.split(":"))
    day = local.date() - timedelta(days=(local.weekday() - WEEKDAYS.index(weekday)) % 7)
    slot = datetime.combine(day, time(hour, minute), tzinfo=tz)
    if slot > local:
        slot = datetime.combine(day - timedelta(days=7), time(hour, minute), tzinfo=tz)
    return slot.astimezone(timezone.utc)


def queue_changelog(*, session: Session, occurrence: datetime, policy: Policy) -> bool:
    """In the scheduler's claimed transaction: queue the post for the week before ``occurrence``.
    False (nothing queued) when no issue was fixed that week."""
    week = fixes(session=session, start=occurrence - timedelta(days=7), end=occurrence)
    if not week or not policy.closing.announce_channel:
        return False
    outbox.enqueue(
        session=session, dedupe_key=f"{JOB}:{occurrence.astimezone(timezone.utc).isoformat()}", method="chat.postMessage",
        payload={"channel": policy.closing.announce_channel,
                 **build_changelog(policy.reference_prefix, week, start=occurrence - timedelta(days=7), end=occurrence)},
    )
    return True
