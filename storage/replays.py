"""Replays of signed Slack requests: a request whose ``X-Slack-Signature`` was already seen.

Slack signs ``v0:{timestamp}:{body}`` and the signature check accepts a timestamp up to five
minutes from now (``bot.runtime.guard.SIGNATURE_WINDOW``; Slack's "Verifying requests from Slack":
"could be a replay attack"). Inside that window the same bytes verify again, so each signature is
kept until its timestamp leaves the window: ``first_sight`` inserts it (``INSERT … ON CONFLICT DO
NOTHING``, one row per signature, so two processes sharing PostgreSQL cannot both see it first)
and says whether it was new. Rows whose window has passed are deleted in the same short
transaction (an index on ``expires_at``): the table holds at most five minutes of requests.
"""

from datetime import datetime

from sqlalchemy import delete
from sqlmodel import Session, col

from storage.database import insert_or_skip
from storage.models import SeenRequest


def first_sight(*, session: Session, signature: str, expires_at: datetime, now: datetime) -> bool:
    """True the first time ``signature`` is seen (it is kept until ``expires_at``); False for a replay."""
    statement = insert_or_skip(session, SeenRequest).values(signature=signature[:80], expires_at=expires_at)
    new = session.exec(statement.returning(SeenRequest.signature)).first() is not None
    session.exec(delete(SeenRequest).where(col(SeenRequest.expires_at) < now))
    return new
