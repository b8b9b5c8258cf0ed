"""Retention as an operation: purge closed reports older than the configured number of days."""

import logging
from datetime import datetime, timedelta

from sqlmodel import Session

from storage.privacy import purge_older_than

log = logging.getLogger(__name__)


def purge(*, session: Session, occurrence: datetime, days: int) -> int:
    """Purge closed reports older than ``days`` days before ``occurrence`` (aware datetime);
    returns how many were purged."""
    count = purge_older_than(session=session, cutoff=occurrence - timedelta(days=days))
    log.info("retention: purged %d closed reports older than %d days", count, days)
    return count
