"""The spool: what the bot acknowledged and has not yet finished handling, kept in a local SQLite
file (separate from the bot's database, on the bot's own disk). Every Slack event goes through it
before its ack (``live``), so a process killed after the ack leaves the event here and it is
handled again; events acked while the database was down, and tracker deliveries that arrived
then, wait here (``waiting``) until it answers.

One table, ``spooled_event``: ``seq`` (arrival order), ``event_id`` (unique: Slack's retries of a
spooled event are one row; a tracker delivery's is ``<tracker>:<sha256 of its body>``), ``kind``
(``slack``, or the tracker's name), ``body`` (as received: for HTTP the exact bytes Slack or the
tracker signed, for Socket Mode the envelope's payload as JSON), ``headers`` (JSON: the signature
headers and Slack's retry headers; for a tracker delivery its ``mac``), ``signed`` (1: verified
again before replay), ``state``, ``owner``, ``attempts`` (times a replay found the database gone
again).

States: ``held`` (a person's command or interaction, kept before Bolt dispatches it and not yet
acknowledged), ``live`` (acked and being handled right now by ``owner``), ``waiting`` (for the
replay), ``replaying`` (being replayed by ``owner``). ``owner`` is ``<pid>:<process start time>``:
rows of a process that is gone (kill -9, a host that rebooted) go back to ``waiting``
(``reclaim``), but for ``held`` ones, which are dropped: that process never acknowledged them, so
Slack showed the person an error and what they send again is new (replaying it too would apply it
twice: a one-line report filed twice). ``acked`` turns ``held`` into ``live``. The
file is per host: processes of one host share it; do not share it between hosts or containers
that cannot see each other's processes.

Every new row is its own transaction with ``synchronous=FULL``: on disk (fsync) before the ack.
The bookkeeping that follows (claim, finish) needs no fsync: lost on a power cut, it means one
more replay, which Slack's ``event_id`` (and a delivery's body hash) makes a no-op.

A full disk: next to the file the spool keeps a reserve (``RESERVE_BYTES`` of zeros, fsynced).
When the disk refuses a bookkeeping write (claim, finish, drop, put back, reclaim), the reserve is
given back to the filesystem and the write tried again, so the replay still drains the spool on a
full disk; new rows are refused (``DiskFull``) while the reserve is out. ``restore_reserve`` (on
every replay tick) takes it back once there is room. ``status`` says which state it is in.

Bounded by ``max_bytes`` of bodies: past it, ``SpoolFull``. The file is opened on first use, so a
bot that never needed it never creates it. Calls block on the disk: callers run them in a worker
thread. SQLite's ``RETURNING`` needs SQLite 3.35 (2021).
"""

import errno
import hashlib
import hmac
import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

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
# Added after the first release: a spool file from before gets them on open.
_ADDED_COLUMNS = {"owner": "TEXT", "kind": "TEXT NOT NULL DEFAULT 'slack'"}
# Headers kept with an event: what its signature needs, Slack's retry marks; for a tracker
# delivery, its parsed events (JSON) and their mark (``delivery_mac``).
KEPT_HEADERS = ("content-type", "x-slack-request-timestamp", "x-slack-signature", "x-slack-retry-num", "x-slack-retry-reason",
                "events", "mac")
RESERVE_BYTES = 256 * 1024  # a few hundred bookkeeping writes of SQLite's WAL (4 kB pages), however full the disk
HELD, LIVE, WAITING, REPLAYING = "held", "live", "waiting", "replaying"
# Marks a person's request acked without its listener's answer (``bot.runtime.late_answer``): a
# replay sends that answer to the response URL. Set after the row was kept, so not in KEPT_HEADERS.
UNANSWERED = "pf-unanswered"


class SpoolFull(Exception):
    """The spool holds ``max_bytes`` already: the event is not kept."""


class DiskFull(SpoolFull):
    """The disk has no room for a new row (the reserve is kept for draining what is held)."""


@dataclass(frozen=True)
class Spooled:
    seq: int
    event_id: str
    body: bytes
    headers: dict[str, str]
    signed: bool
    kept_at: float  # epoch seconds
    kind: str = "slack"


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22), so a pid
    reused after a restart (pid 1 in a container) is not mistaken for the process that wrote a row;
    "" where there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return ""
    return stat.rsplit(b")", 1)[-1].split()[19].decode()


def this_process() -> str:
    pid = os.getpid()
    return f"{pid}:{_start_time(pid)}"


def alive(owner: str | None) -> bool:
    """Whether the process that wrote ``owner`` is still running on this host."""
    pid_text, _, started = (owner or "").partition(":")
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: alive, and not ours to judge by its start time
    return not started or _start_time(pid) in ("", started)


def _disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return isinstance(exc, sqlite3.Error) and "full" in str(exc).lower()


class EventSpool:
    def __init__(self, path: Path | str, *, max_bytes: int, reserve_bytes: int = RESERVE_BYTES):
        self.path = Path(path)
        self.reserve_path = self.path.with_name(self.path.name + ".reserve")
        self.max_bytes = max_bytes
        self.reserve_bytes = reserve_bytes
        self.owner = this_process()
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._exists = False  # the file is known to exist (then counts are asked of it)
        self.problem: str | None = None  # what keeps the spool from working normally, for /healthz and the log

    # ------------------------------------------------------------------ file

    def _open(self, *, create: bool) -> sqlite3.Connection | None:
        if self._conn is None:
            if not create and not self.path.exists():
                return None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")  # each new row is fsynced before its ack
                # A short WAL, checkpointed often: the file's pages are reused rather than grown.
                conn.execute("PRAGMA wal_autocheckpoint=64")
                conn.execute(_SCHEMA)
                have = {row[1] for row in conn.execute("PRAGMA table_info(spooled_event)")}
                for column, kind in _ADDED_COLUMNS.items():
                    if column not in have:
                        conn.execute(f"ALTER TABLE spooled_event ADD COLUMN {column} {kind}")
                conn.execute("CREATE INDEX IF NOT EXISTS spooled_event_state ON spooled_event (state, seq)")
            except BaseException:
                conn.close()
                raise
            self._conn = conn
            self._exists = True
            self._ensure_reserve()
        return self._conn

    def _ensure_reserve(self) -> bool:
        """Make the reserve file if it is missing; False if the disk has no room for it."""
        if self.reserve_bytes <= 0:
            return True
        try:
            if self.reserve_path.stat().st_size >= self.reserve_bytes:
                return True
        except FileNotFoundError:
            pass
        try:
            fd = os.open(self.reserve_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                chunk = b"\0" * 65536
                left = self.reserve_bytes
                while left > 0:  # written, not ftruncate'd: a sparse file would reserve nothing
                    left -= os.write(fd, chunk[: min(left, len(chunk))])
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self.reserve_path.unlink(missing_ok=True)
            if not _disk_full(exc):
                raise
            return False
        return True

    def _release_reserve(self) -> bool:
        try:
            self.reserve_path.unlink()
        except FileNotFoundError:
            return False
        return True

    def restore_reserve(self) -> bool:
        """Take the reserve back if it was given out and there is room now; True when it is in place."""
        with self._lock:
            if self._conn is None:
                return True
            if self._ensure_reserve():
                if self.problem:
                    log.warning("event spool: disk space is back, reserve of %d kB restored", self.reserve_bytes // 1024)
                    self.problem = None
                return True
            return False

    def _bookkeeping(self, conn: sqlite3.Connection, write):
        """``write(conn)`` (a change to rows already held); on a full disk the reserve is given
        back to the filesystem and it is tried again, once."""
        try:
            return self._in_transaction(conn, write)
        except (sqlite3.Error, OSError) as exc:
            if not _disk_full(exc) or not self._release_reserve():
                raise
            self.problem = (f"disk full at {self.path.parent}: the spool gave back its {self.reserve_bytes // 1024} kB "
                            "reserve to replay what it holds, and refuses new events until space is freed")
            log.error("event spool: %s", self.problem)
            return self._in_transaction(conn, write)

    @staticmethod
    def _in_transaction(conn: sqlite3.Connection, write):
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = write(conn)
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise
        conn.execute("COMMIT")
        return result

    # ------------------------------------------------------------------ arrivals

    def keep(self, *, event_id: str, body: bytes, headers: dict[str, str], signed: bool, live: bool = False,
             kind: str = "slack", in_order: bool = True, before_ack: bool = False) -> tuple[int, str] | None:
        """Keep an event, fsynced; ``(seq, state)`` if it is new here, None if it was held already.
        ``live``: the caller handles it right after its ack (state ``live``), unless older events
        wait and ``in_order``, which it then queues behind (state ``waiting``; a person's click or
        command is handled at once, ``in_order`` False: they wait for its answer). An event
        already held that is ``live`` or ``replaying`` goes back to ``waiting`` (its handler met
        the outage); one that waits stays as it is (Slack's retry). ``before_ack`` (with ``live``): a
        person's request not yet acknowledged, state ``held`` until ``acked``; one held already is
        left as it is (the same signed request again: a replay). Raises SpoolFull past
        ``max_bytes``, DiskFull when the disk has no room, OSError/sqlite3.Error if it refuses."""
        kept = json.dumps({k: v for k, v in headers.items() if k in KEPT_HEADERS})

        def write(conn: sqlite3.Connection) -> tuple[int, str] | None:
            if conn.execute("SELECT 1 FROM spooled_event WHERE event_id = ?", (event_id,)).fetchone():
                if not before_ack:  # (a person's request kept again is a replay of it: its copy stays as it is)
                    conn.execute("UPDATE spooled_event SET state = 'waiting', owner = NULL, attempts = attempts + 1 "
                                 "WHERE event_id = ? AND state IN ('held', 'live', 'replaying')", (event_id,))
                return None
            size = conn.execute("SELECT COALESCE(SUM(LENGTH(body)), 0) FROM spooled_event").fetchone()[0]
            if size + len(body) > self.max_bytes:
                raise SpoolFull(f"the event spool holds {size} bytes (limit {self.max_bytes})")
            state = LIVE if live and not (in_order and conn.execute(
                "SELECT 1 FROM spooled_event WHERE state = 'waiting' LIMIT 1").fetchone()) else WAITING
            if state == LIVE and before_ack:
                state = HELD
            seq = conn.execute(
                "INSERT INTO spooled_event (event_id, body, headers, signed, kept_at, state, owner, kind) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
                (event_id, body, kept, int(signed), time.time(), state, self.owner if state in (LIVE, HELD) else None, kind),
            ).fetchone()[0]
            return seq, state

        with self._lock:
            conn = self._open(create=True)
            assert conn is not None  # create=True opens or raises
            if self.problem and not self.reserve_path.exists() and self.reserve_bytes > 0:
                raise DiskFull(self.problem)
            try:
                return self._in_transaction(conn, write)
            except (sqlite3.Error, OSError) as exc:
                if _disk_full(exc):
                    self.problem = f"disk full at {self.path.parent}: new events are not spooled"
                    raise DiskFull(self.problem) from None
                raise

    def state_of(self, seq: int) -> str | None:
        with self._lock:
            conn = self._open(create=False)
            row = conn and conn.execute("SELECT state FROM spooled_event WHERE seq = ?", (seq,)).fetchone()
            return row[0] if row else None

    # ------------------------------------------------------------------ the replay

    def take(self) -> Spooled | None:
        """The oldest waiting event, claimed for replay by this process (one statement, so two
        processes never take the same row); None when none waits."""
        with self._lock:
            conn = self._open(create=False)
            if conn is None:
                return None
            row = self._bookkeeping(conn, lambda c: c.execute(
                "UPDATE spooled_event SET state = 'replaying', owner = ? WHERE seq = "
                "(SELECT seq FROM spooled_event WHERE state = 'waiting' ORDER BY seq LIMIT 1) "
                "RETURNING seq, event_id, body, headers, signed, kept_at, kind", (self.owner,)).fetchone())
            if row is None:
                return None
            return Spooled(row[0], row[1], bytes(row[2]), json.loads(row[3]), bool(row[4]), row[5], row[6])

    def finish(self, seq: int, state: str = REPLAYING) -> bool:
        """Drop an event this process handled (``state``: ``replaying``, or ``live`` after its
        live handling, which also drops it ``held``: its listener ended before the ack was
        marked); False (and kept) if its handler put it back (``keep`` again)."""
        states = (LIVE, HELD) if state == LIVE else (state, state)
        with self._lock:
            conn = self._open(create=False)
            if conn is None:
                return False
            conn.execute("PRAGMA synchronous=NORMAL")  # lost on a power cut, it is one more (no-op) replay
            try:
                return bool(self._bookkeeping(conn, lambda c: c.execute(
                    "DELETE FROM spooled_event WHERE seq = ? AND state IN (?, ?) AND owner = ?", (seq, *states, self.owner)).rowcount))
            finally:
                conn.execute("PRAGMA synchronous=FULL")

    def acked(self, seq: int, answered: bool = True) -> None:
        """A ``held`` request was acknowledged: from now on it is ``live``, replayed if this process
        dies before its listener ends; not ``answered``: acked without its listener's answer, which
        the replay then sends (``UNANSWERED``). Written before the answer leaves (the caller's
        order), without fsync: a process killed loses no OS buffer, and a power cut loses the answer too."""
        mark = "" if answered else f", headers = json_set(headers, '$.\"{UNANSWERED}\"', '1')"
        with self._lock:
            conn = self._open(create=False)
            if conn is None:
                return
            conn.execute("PRAGMA synchronous=NORMAL")
            try:
                self._bookkeeping(conn, lambda c: c.execute(
                    f"UPDATE spooled_event SET state = 'live'{mark} WHERE seq = ? AND state = 'held' AND owner = ?", (seq, self.owner)))
            finally:
                conn.execute("PRAGMA synchronous=FULL")

    def drop(self, seq: int) -> None:
        """Drop an event that will never replay (its signature does not hold)."""
        with self._lock:
            conn = self._open(create=False)
            if conn is not None:
                self._bookkeeping(conn, lambda c: c.execute("DELETE FROM spooled_event WHERE seq = ?", (seq,)))

    def reclaim(self) -> int:
        """Rows ``live`` or ``replaying`` in a process that is gone go back to ``waiting``; its
        ``held`` rows (never acknowledged) are dropped. How many went back."""
        with self._lock:
            conn = self._open(create=False)
            if conn is None:
                return 0
            owners = [o for (o,) in conn.execute("SELECT DISTINCT owner FROM spooled_event WHERE state IN ('held', 'live', 'replaying')")]
            gone = [o for o in owners if o != self.owner and not alive(o)]
            if not gone:
                return 0
            marks = ",".join("?" * len(gone))

            def write(c: sqlite3.Connection) -> int:
                dropped = c.execute(f"DELETE FROM spooled_event WHERE state = 'held' AND owner IN ({marks})", gone).rowcount
                if dropped:
                    log.info("%d request(s) of a process that is gone were never acknowledged: not replayed", dropped)
                return c.execute(f"UPDATE spooled_event SET state = 'waiting', owner = NULL "
                                 f"WHERE state IN ('live', 'replaying') AND owner IN ({marks})", gone).rowcount

            return self._bookkeeping(conn, write)

    # ------------------------------------------------------------------ state

    def counts(self) -> dict[str, int]:
        """Rows per state, and ``bytes`` of bodies held."""
        found = {HELD: 0, LIVE: 0, WAITING: 0, REPLAYING: 0, "bytes": 0}
        with self._lock:
            conn = self._open(create=False) if self._exists or self.path.exists() else None
            if conn is not None:
                for state, n, size in conn.execute("SELECT state, COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM spooled_event GROUP BY state"):
                    found[state] = n
                    found["bytes"] += size
        return found

    def waiting(self) -> int:
        """How many events wait for the replay (or are being replayed)."""
        c = self.counts()
        return c[WAITING] + c[REPLAYING]

    def held(self) -> int:
        """How many events the spool holds, in any state."""
        c = self.counts()
        return c[HELD] + c[LIVE] + c[WAITING] + c[REPLAYING]

    def status(self) -> dict:
        """For /healthz and /metrics: rows per state, bytes, and ``problem`` (None when all is well)."""
        return {**self.counts(), "problem": self.problem}

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def signature_holds(secret: bytes, entry: Spooled) -> bool:
    """Slack's v0 HMAC over the kept body, without the 5-minute window (the event was inside it
    when it arrived and was checked then): a spool file edited on disk replays nothing."""
    ts, given = entry.headers.get("x-slack-request-timestamp", ""), entry.headers.get("x-slack-signature", "")
    expected = "v0=" + hmac.new(secret, b"v0:" + ts.encode() + b":" + entry.body, hashlib.sha256).hexdigest()
    return bool(secret) and hmac.compare_digest(expected.encode(), given.encode("latin-1", "replace"))


def delivery_mac(secret: str, kind: str, body: bytes) -> str:
    """A tracker delivery's mark in the spool: HMAC-SHA256 of its tracker and ``body`` (the
    delivery's body and its parsed events) under that tracker's webhook secret (the delivery's own signature scheme may have a time window, e.g.
    Linear's, that a replay an hour later would fail)."""
    return hmac.new(secret.encode(), kind.encode() + b"\n" + body, hashlib.sha256).hexdigest()
