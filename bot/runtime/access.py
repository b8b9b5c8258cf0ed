"""Who may read people's words: one rule for every subcommand, button and page that shows what
someone told the bot (a report's text, in a channel or in a private DM; merged duplicates' too).

The rule: the hosts (the policy's ``hosts.users`` and the members of ``hosts.usergroup``,
``bot.runtime.hosts``) read everyone's words; anyone else reads only the words of the reports they
are a reporter of (they filed it, or reported it too: the people the bot already tells about it in
DMs, and whose reports ``/platform-feedback mine`` lists). Who asks from which workspace makes no
difference: a person of another allowed workspace is "anyone else". The office-hours leads of the
focus (``focus.leads``) may pick and publish, and see refs, scores and areas, not others' words.

Surfaces that show others' words call ``reader``, then ``Reader.words(point_id, text)`` (``HIDDEN``
in place of words the reader may not see) or ``Reader.host`` (lists that are all others' words,
such as ``top``'s reports, are left out). Published posts (the focus announcement, the weekly
changelog, the digest) are the hosts' choice to publish and are not requests by a reader.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlmodel import Session, col, select

from storage.models import Reporter

HIDDEN = "(words shown only to the hosts and the people who reported it)"


@dataclass(frozen=True)
class Reader:
    """A person asking to see reports: ``host``, or a reporter of the ids in ``own``."""

    user_id: str
    host: bool
    own: frozenset[int] = frozenset()

    def may_read(self, point_id: int | None) -> bool:
        return self.host or (point_id is not None and point_id in self.own)

    def words(self, point_id: int | None, text: str) -> str:
        """``text`` (report ``point_id``'s words) if this reader may read them, else ``HIDDEN``."""
        return text if self.may_read(point_id) else HIDDEN


def reported_by(*, session: Session, user_id: str, point_ids: Iterable[int]) -> frozenset[int]:
    """Which of ``point_ids`` ``user_id`` is a reporter of."""
    ids = sorted(set(point_ids))
    if not ids:
        return frozenset()
    rows = session.exec(select(Reporter.friction_point_id).where(Reporter.user_id == user_id,
                                                                 col(Reporter.friction_point_id).in_(ids))).all()
    return frozenset(rows)


async def reader(deps, user_id: str, point_ids: Iterable[int] = ()) -> Reader:
    """The reader ``user_id`` is, for reports ``point_ids`` (``deps``: ``bot.runtime.context.Deps``).
    Reads the database only for a non-host with ids to check (DatabaseUnavailable as ``db.run``)."""
    if await deps.hosts.is_host(user_id):
        return Reader(user_id, True)
    ids = [i for i in point_ids if i is not None]
    own = await deps.db.run(reported_by, user_id=user_id, point_ids=ids) if ids else frozenset()
    return Reader(user_id, False, own)
