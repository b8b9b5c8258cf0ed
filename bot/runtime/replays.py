"""Refusing replays of signed Slack requests (issue #26 item 10): a host's signed ``resolve FB-n``
or a *Reopen* click sent again within Slack's five-minute window verifies again, and used to be
applied again. A request whose signature was already seen is acknowledged (200, empty) and not
applied.

Which requests: slash commands and interactions (buttons, modals, shortcuts). Events are not
checked here: their ``event_id`` already makes each one apply once (``bot.runtime.event_gate``,
``storage.friction.first_delivery``), Slack's own retries of them (``X-Slack-Retry-Num``) must get
through to that check, and during a database outage they go to the spool without waiting for a
database that cannot answer.

Where: the signature is kept in the database (``storage.replays``), so every process of
``serve --workers`` sharing PostgreSQL, and a process restarted within the window, knows it. If
the database cannot answer within ``CHECK_SECONDS``, the request is let through: what it does
needs the database too and answers "try again" on its own; refusing would drop a real request.
(So a replay sent while the database is down or very slow may be applied.)
"""

import logging
from datetime import datetime, timezone

from bot.runtime.guard import SIGNATURE_WINDOW
from storage.database import Database, DatabaseUnavailable
from storage.replays import first_sight

log = logging.getLogger(__name__)
# The check is one small insert (milliseconds). A database that hangs must not take the request's
# ack time: past this the request is let through, and what it does meets the database on its own
# (and answers "try again" within Slack's 3 s).
CHECK_SECONDS = 0.25


class Replays:
    def __init__(self, db: Database):
        self.db = db

    async def seen_before(self, headers, body: dict) -> bool:
        """Whether this signed request (its ``headers``, already verified; its parsed ``body``) is a
        replay of one already let through."""
        if body.get("type") in ("event_callback", "url_verification", "app_rate_limited"):
            return False
        ts, signature = headers.get("x-slack-request-timestamp", ""), headers.get("x-slack-signature", "")
        if not (ts.isascii() and ts.isdigit() and signature):
            return False  # not signed (Socket Mode): nothing to key on
        now = datetime.now(timezone.utc)
        expires = datetime.fromtimestamp(int(ts) + SIGNATURE_WINDOW + 60, timezone.utc)  # a minute for clock skew
        try:
            first = await self.db.run_within(CHECK_SECONDS, first_sight, signature=signature, expires_at=expires, now=now)
        except DatabaseUnavailable:
            log.warning("could not check a Slack request for a replay within %g s: let through", CHECK_SECONDS)
            return False
        if not first:
            log.warning("refused a replayed Slack request (its signature was seen before, %s s ago at most)", SIGNATURE_WINDOW)
        return not first
