"""Who an issue's news reaches: the reports linked to it and every reporter of them and of the
duplicates merged into them, in steps of ``CHUNK``. Shared by closure notices (``bot.closing.service``)
and progress notices (``bot.progress.service``), which the closing steps run."""

from sqlmodel import Session, col, select

from storage.models import FrictionPoint, Reporter, TrackerLink

CHUNK = 200  # reports or reporters per step; one step is one short transaction (on SQLite every
# other write waits for it, the next tracker delivery's recording included)

def targets(session: Session, links: list[TrackerLink]) -> list[int]:
    """Ids of the points linked to the issue, in id order; a link on a merged duplicate counts for
    the point it joined."""
    ids = {link.friction_point_id for link in links}
    if not ids:
        return []
    rows = list(session.exec(select(FrictionPoint.id, FrictionPoint.duplicate_of_id).where(col(FrictionPoint.id).in_(ids))).all())
    merged_into = {into for _, into in rows if into}
    if merged_into:
        rows += session.exec(select(FrictionPoint.id, FrictionPoint.duplicate_of_id).where(col(FrictionPoint.id).in_(merged_into))).all()
    return sorted({point_id for point_id, into in rows if into is None})

def reporters(session: Session, ids: list[int]) -> dict[str, int]:
    """Every reporter of these points and of the duplicates merged into them, once each, with the
    id of the report that is theirs (a duplicate they filed: their own words)."""
    if not ids:
        return {}
    duplicates = list(session.exec(select(FrictionPoint.id).where(col(FrictionPoint.duplicate_of_id).in_(ids))
                                   .order_by(col(FrictionPoint.id))).all())
    order = {point_id: n for n, point_id in enumerate(duplicates + ids)}
    rows = session.exec(select(Reporter.friction_point_id, Reporter.user_id)
                        .where(col(Reporter.friction_point_id).in_(list(order))).order_by(col(Reporter.id))).all()
    owners: dict[str, int] = {}
    for point_id, user_id in sorted(rows, key=lambda r: order[r[0]]):  # stable: reporters in id order per point
        owners.setdefault(user_id, point_id)
    return owners
