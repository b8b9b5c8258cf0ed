"""Where a report stands, in one word people read the same everywhere (card, ``mine``, App Home,
dashboard): new → triaged → issue linked → in progress → fixed (or not planned). ``stage_of``
is the one place it is decided; ``started_points`` is what it needs from the database.

From the report's status: new is ``new``; triaged is ``acknowledged`` (a host picked it up);
issue linked is ``linked`` until a linked issue starts (``link_start``, bot.progress.service),
then in progress; fixed is ``resolved``; not planned is ``wont_fix``; a merged duplicate shows
"merged" (its stage is its canonical report's).
"""

from enum import StrEnum
from typing import Protocol

from sqlmodel import Session, col, select

from bot.text import link
from storage.models import FrictionPoint, LinkStart, Status, TrackerLink


class Stage(StrEnum):
    new = "new"
    triaged = "triaged"
    linked = "issue linked"
    in_progress = "in progress"
    fixed = "fixed"
    not_planned = "not planned"
    merged = "merged"


class HasStatus(Protocol):
    """A report (``FrictionPoint``) or any row with its status (the dashboard's score rows)."""

    @property
    def status(self) -> str: ...


PATH = (Stage.new, Stage.triaged, Stage.linked, Stage.in_progress, Stage.fixed)


def stage_of(point: HasStatus, started: bool = False) -> Stage:
    """``started``: one of the report's linked issues started (``started_points``). ``point``: a
    ``FrictionPoint``, or any row with its ``status`` (the dashboard's score rows)."""
    status = Status(point.status)
    if status == Status.duplicate or getattr(point, "duplicate_of_id", None) is not None:
        return Stage.merged
    if status == Status.resolved:
        return Stage.fixed
    if status == Status.wont_fix:
        return Stage.not_planned
    if status == Status.linked:
        return Stage.in_progress if started else Stage.linked
    return Stage.triaged if status == Status.acknowledged else Stage.new


def started_points(*, session: Session, point_ids: list[int]) -> set[int]:
    """Of ``point_ids``, those with a linked issue that started (its link still there)."""
    if not point_ids:
        return set()
    rows = session.exec(select(LinkStart.friction_point_id).join(TrackerLink, col(TrackerLink.id) == LinkStart.link_id)
                        .where(col(LinkStart.friction_point_id).in_(point_ids))).all()
    return set(rows)


def stage_mrkdwn(point: FrictionPoint, started: bool = False) -> str:
    """The stage on its path, the current one bold, with the issue links (Slack mrkdwn)."""
    stage = stage_of(point, started)
    path = PATH if stage != Stage.not_planned else (*PATH[:-1], Stage.not_planned)
    shown = " → ".join(f"*{s}*" if s == stage else str(s) for s in path) if stage in path else f"*{stage}*"
    links = ", ".join(link(ln.url, ln.key) for ln in point.links[:3])
    return f"Stage: {shown}" + (f" · {links}" if links and stage != Stage.merged else "")
