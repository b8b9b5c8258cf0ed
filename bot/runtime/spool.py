"""The event spool: Slack events acked while the database could not store them, kept in a local
SQLite file (separate from the bot's database, on the bot's own disk) until it can.

One table, ``spooled_event``: ``seq`` (arrival order), ``event_id`` (unique: Slack's retries of a
spooled event are one row), ``body`` (the request body as received: for HTTP the exact bytes Slack
signed, for Socket Mode the envelope's payload as JSON), ``headers`` (JSON: the signature headers
and Slack's retry headers), ``signed`` (1: HTTP, verified again before replay), ``state``
(``waiting`` or ``replaying``), ``attempts`` (times a replay found the database gone again).

Every write is its own transaction with ``synchronous=FULL``: it is on disk (fsync) before the
event is acked. Bounded by ``max_bytes`` of bodies: past it, ``SpoolFull`` and the caller refuses
the event (HTTP: 503, so Slack retries). The file is opened on first use, so a bot that never
needed it never creates it. Calls block on the disk: callers run them in a worker thread.
"""

import hashlib
import hmac
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spooled_event (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL,
    headers TEXT NOT NULL,
    signed INTEGER NOT NULL,
    kept_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'waiting',
    attempts INTEGER NOT NULL DEFAULT 0
)"""
# Headers kept with an event: what its signature needs, and Slack's retry marks.
KEPT_HEADERS = ("content-type", "x-slack-request-timestamp", "x-slack-signature", "x-slack-retry-num", "x-slack-retry-reason")


class SpoolFull(Exception):
    """The spool holds ``max_bytes`` already: the event is not kept."""


@dataclass(frozen=True)
class Spooled:
    seq: int
    event_id: str
    body: bytes
    headers: dict[str, str]
    signed: bool
    kept_at: float  # epoch seconds


class EventSpool:
    def __init__(self, path: Path | str, *, max_bytes: int):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._count: int | None = None  # rows held, known once the file was looked at

    def _open(self, *, create: bool) -> sqlite3.Connection | None:
        if self._conn is None:
            if not create and not self.path.exists():
                self._count = 0
                return None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=5)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # each commit is fsynced before we ack
            conn.execute(_SCHEMA)
            # A process that stopped mid-replay left its event "replaying": it goes again (Slack's
            # event_id makes the second store a no-op if the first one had committed).
            conn.execute("UPDATE spooled_event SET state = 'waiting' WHERE state = 'replaying'")
            self._conn = conn
            self._count = conn.execute("SELECT COUNT(*) FROM spooled_event").fetchone()[0]
        return self._conn

    def held(self) -> int:
        """How many events the spool holds (waiting or being replayed)."""
        with self._lock:
            if self._count is None:
                self._open(create=False)
            return self._count or 0

    def keep(self, *, event_id: str, body: bytes, headers: dict[str, str], signed: bool) -> bool:
        """Keep an event; True if it is new here. An event already held is only marked to go again
        (a replay that found the database gone, or Slack's retry of a spooled event). Raises
        SpoolFull past ``max_bytes``, OSError/sqlite3.Error if the disk refuses."""
        kept = json.dumps({k: v for k, v in headers.items() if k in KEPT_HEADERS})
        with self._lock:
            conn = self._open(create=True)
            again = conn.execute("UPDATE spooled_event SET state = 'waiting', attempts = attempts + 1 "
                                 "WHERE event_id = ? AND state = 'replaying'", (event_id,)).rowcount
            if again or conn.execute("SELECT 1 FROM spooled_event WHERE event_id = ?", (event_id,)).fetchone():
                return False
            size = conn.execute("SELECT COALESCE(SUM(LENGTH(body)), 0) FROM spooled_event").fetchone()[0]
            if size + len(body) > self.max_bytes:
                raise SpoolFull(f"the event spool holds {size} bytes (limit {self.max_bytes})")
            conn.execute("INSERT INTO spooled_event (event_id, body, headers, signed, kept_at) VALUES (?, ?, ?, ?, ?)",
                         (event_id, body, kept, int(signed), time.time()))
            self._count += 1
            return True

    def take(self) -> Spooled | None:
        """The oldest waiting event, marked as being replayed; None when none waits."""
        with self._lock:
            conn = self._open(create=False)
            if conn is None:
                return None
            row = conn.execute("SELECT seq, event_id, body, headers, signed, kept_at FROM spooled_event "
                               "WHERE state = 'waiting' ORDER BY seq LIMIT 1").fetchone()
            if row is None:
                return None
            conn.execute("UPDATE spooled_event SET state = 'replaying' WHERE seq = ?", (row[0],))
            return Spooled(row[0], row[1], bytes(row[2]), json.loads(row[3]), bool(row[4]), row[5])

    def finish(self, seq: int) -> bool:
        """Drop a replayed event; False (and kept) if its replay put it back (``keep`` again)."""
        with self._lock:
            conn = self._open(create=False)
            if conn is None:
                return False
            gone = conn.execute("DELETE FROM spooled_event WHERE seq = ? AND state = 'replaying'", (seq,)).rowcount
            self._count -= gone
            return bool(gone)

    def drop(self, seq: int) -> None:
        """Drop an event that will never replay (its signature does not hold)."""
        with self._lock:
            conn = self._open(create=False)
            if conn is not None:
                self._count -= conn.execute("DELETE FROM spooled_event WHERE seq = ?", (seq,)).rowcount

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn, self._count = None, None


def signature_holds(secret: bytes, entry: Spooled) -> bool:
    """Slack's v0 HMAC over the kept body, without the 5-minute window (the event was inside it
    when it arrived and was checked then): a spool file edited on disk replays nothing."""
    ts, given = entry.headers.get("x-slack-request-timestamp", ""), entry.headers.get("x-slack-signature", "")
    expected = "v0=" + hmac.new(secret, b"v0:" + ts.encode() + b":" + entry.body, hashlib.sha256).hexdigest()
    return bool(secret) and hmac.compare_digest(expected.encode(), given.encode("latin-1", "replace"))
