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
    """True the first time ``signature`` is seen (it is kept until ``expires_at``); False for a replay.
    On PostgreSQL one statement (the delete a data-modifying ``WITH``): it is on the ack path of every
    command and click, and each round trip counts (2.9 ms a check with two statements, 1.7 with one)."""
    gone = delete(SeenRequest).where(col(SeenRequest.expires_at) < now)
    statement = insert_or_skip(session, SeenRequest).values(signature=signature[:80], expires_at=expires_at).returning(SeenRequest.signature)
    if session.get_bind().dialect.name == "postgresql":
        # (A row the WITH deletes is still seen by the insert's conflict check: harmless, as an
        # expired signature's timestamp is outside the window and never verifies to get here.)
        return session.exec(statement.add_cte(gone.cte("gone"))).first() is not None
    new = session.exec(statement).first() is not None
    session.exec(gone)
    return new
