"""The database handle: one engine, sessions per unit of work, run off the event loop.

"Unavailable" is one exception, ``DatabaseUnavailable``, whatever the driver or the pool says
(refused, reset, closed, a pool checkout or a person-facing call that runs out of time): callers
answer it with "try again", never a 500.
"""

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial
from pathlib import Path
from typing import TypeVar

import anyio
import anyio.to_thread
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel import Session, text

T = TypeVar("T")

MIGRATIONS = Path(__file__).parent / "migrations"


QUEUED = "outbox_queued"  # Session.info key: this transaction queued an outbox message


def queued(session: Session) -> None:
    """Note on ``session`` that its transaction queued an outbox message (``storage.outbox``):
    once it commits, ``Database.transact`` calls the database's ``after_queue`` callbacks (the
    app's sender wakes up)."""
    session.info[QUEUED] = True


def insert_unique(session: Session, *rows) -> bool:
    """Add ``rows`` in a savepoint. False, and nothing added, if a unique constraint says they (or
    their twins from a retry, a double click or another instance) are already there: the one way
    this code base makes "exactly once" out of the database."""
    try:
        with session.begin_nested():
            session.add_all(rows)
            session.flush()
    except IntegrityError:
        return False
    return True


def insert_or_skip(session: Session, model):
    """``INSERT ... ON CONFLICT DO NOTHING`` for ``model`` on the session's database (SQLite and
    PostgreSQL spell it alike): the bulk form of ``insert_unique``."""
    dialect = session.get_bind().dialect.name
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(model).on_conflict_do_nothing()


class DatabaseUnavailable(Exception):
    """The database could not be reached; the caller tells the user to try again."""


class OutcomeUnknown(DatabaseUnavailable):
    """The database stopped answering after a transaction's writes were sent: at its COMMIT (the
    connection dropped before the server's reply) or past the caller's deadline (the abandoned
    thread may still commit). It may have been written. "Try again" is untrue then, unless trying
    again is safe: the caller repeats it only if the work is keyed to be safe to repeat."""


# Seconds a person-facing call may wait for PostgreSQL: under Slack's 3 s ack window
# (https://api.slack.com/apis/events-api#responding), with room for the response itself.
ANSWER_SECONDS = 2.5
CONNECT_SECONDS = 2  # libpq's connect_timeout (whole seconds): a refused or silent server fails here
POOL_SECONDS = 2  # waiting for a pooled connection while the others hang
# A host that dies in the middle of a transaction leaves its PostgreSQL session "idle in
# transaction", holding its locks (the unique keys it inserted: an event's id, a report's intake
# key) until the server notices the connection is gone, which TCP keepalive does after about two
# hours by default. Every replay of that event would wait on those locks and give up, and the
# events behind it with it. The server ends such a session after this long
# (``idle_in_transaction_session_timeout``, per session); the bot's own transactions never wait
# between two statements for anywhere near as long.
IDLE_IN_TRANSACTION_SECONDS = 300


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means "the database cannot be reached" rather than "this statement is
    wrong": a refused/reset/closed connection (OperationalError, InterfaceError), a connection
    SQLAlchemy found dead and invalidated (its pre-ping or any statement: ``connection_invalidated``),
    a pool checkout that timed out, or a driver error on a connection that is closed or broken
    (psycopg raises ProgrammingError/InterfaceError there, e.g. "the connection is closed")."""
    if isinstance(exc, (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        message = str(exc.orig).lower()
        return "connection" in message and any(w in message for w in ("closed", "lost", "broken", "terminated"))
    return False


@contextmanager
def unavailable_as_one() -> Iterator[None]:
    """Re-raise every "cannot be reached" error (``is_unavailable``) as DatabaseUnavailable."""
    try:
        yield
    except (DBAPIError, DisconnectionError, PoolTimeout) as exc:
        if not is_unavailable(exc):
            raise
        orig = getattr(exc, "orig", None) or exc
        raise DatabaseUnavailable(" ".join(str(orig).split())[:200] or type(orig).__name__) from exc


READ_ONLY = "platform_feedback_read_only"  # a connection execution option: Database.read's transactions


def make_engine(url: str, *, idle_in_transaction_seconds: float = IDLE_IN_TRANSACTION_SECONDS) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 5})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            # We issue BEGIN ourselves (below), so pysqlite must not.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            # What is deleted or overwritten is zeroed in the file, not left in free space: a closed
            # survey's erased nonce and sealed answers must not be recoverable (storage.surveys).
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn):
            # Take the write lock up front: two read-then-write transactions then queue up
            # (busy timeout) instead of one failing or losing the other's update. ``Database.read``
            # asks for a deferred one: it only reads, and in WAL mode readers never wait for the writer.
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")

        return engine
    # Short connect and pool timeouts: a user waiting in Slack gets "try again" rather than silence.
    engine = create_engine(url, pool_pre_ping=True, pool_timeout=POOL_SECONDS, connect_args={"connect_timeout": CONNECT_SECONDS})

    @event.listens_for(engine, "connect")
    def _session_settings(dbapi_connection, _record):
        # A SET once per connection rather than libpq's startup ``options``, which a pooler in
        # front of the server (PgBouncer) may refuse to pass on.
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET idle_in_transaction_session_timeout = {int(idle_in_transaction_seconds * 1000)}")
        dbapi_connection.commit()

    return engine


def make_async_engine(url: str) -> AsyncEngine:
    """The same database for libraries that want asyncio (slack-sdk's installation store):
    aiosqlite for SQLite, psycopg 3's async mode for PostgreSQL."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return create_async_engine(parsed.set(drivername="sqlite+aiosqlite"), connect_args={"timeout": 5})
    return create_async_engine(parsed, pool_pre_ping=True, pool_timeout=POOL_SECONDS, connect_args={"connect_timeout": CONNECT_SECONDS})


# Once the person a task serves has had their answer (a listener's ack: bot.runtime.late_answer),
# nobody waits on its database calls, and a call given up on at ``answer_seconds`` may still commit:
# "try again" would then be untrue and the retry a duplicate. From then on ``run`` waits
# ``ANSWERED_SECONDS`` in that task (``person_answered``).
ANSWERED_SECONDS = 15.0
_answered: ContextVar[bool] = ContextVar("pf_person_answered", default=False)


def person_answered() -> None:
    """Mark the current task's person as answered (``ANSWERED_SECONDS``); tasks it starts from now
    on inherit it."""
    _answered.set(True)


class Database:
    def __init__(self, url: str, *, answer_seconds: float | None = None, background_workers: int = 0,
                 idle_in_transaction_seconds: float = IDLE_IN_TRANSACTION_SECONDS):
        """``answer_seconds``: how long ``run`` and ``check`` wait before raising DatabaseUnavailable;
        default ANSWER_SECONDS on a server database (a network partition can hang a connection that
        is already open, which no driver timeout covers), none on SQLite (a local file; its busy
        timeout bounds lock waits). ``background_workers``: PostgreSQL parallel workers a
        ``background`` transaction's queries may use (``max_parallel_workers_per_gather``).
        ``idle_in_transaction_seconds``: on PostgreSQL, when the server ends a session of this
        handle that sits in a transaction sending nothing (a host that died holding it)."""
        self.url = url
        self.background_workers = int(background_workers)
        self.engine = make_engine(url, idle_in_transaction_seconds=idle_in_transaction_seconds)
        self._async_engine: AsyncEngine | None = None
        # Called, in the committing thread, after a transaction that queued an outbox message
        # committed (storage.outbox.queued): the app's sender wakes on it, so nothing queued waits
        # for the sender's next idle poll, whoever queued it.
        self.after_queue: list[Callable[[], None]] = []
        self.answer_seconds = answer_seconds if answer_seconds is not None else (None if url.startswith("sqlite") else ANSWER_SECONDS)

    @property
    def async_engine(self) -> AsyncEngine:
        """Made on first use: a one-workspace bot never needs it."""
        if self._async_engine is None:
            self._async_engine = make_async_engine(self.url)
        return self._async_engine

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def transact(self, fn: Callable[..., T], /, *args, **kwargs) -> T:
        """Run ``fn(session=..., ...)`` in one transaction: all of it is written, or none.
        DatabaseUnavailable if the database cannot be reached; OutcomeUnknown if that happens at
        the commit itself."""
        committing = False
        try:
            with unavailable_as_one(), self.session() as session:
                with session.begin():
                    result = fn(*args, session=session, **kwargs)
                    session.flush()  # what fails up to here was not written
                    committing = True
                if session.info.pop(QUEUED, False):
                    for call in list(self.after_queue):
                        call()
                return result
        except DatabaseUnavailable as exc:
            if committing and not isinstance(exc, OutcomeUnknown):
                raise OutcomeUnknown(f"at commit: {exc}") from exc
            raise

    def read(self, fn: Callable[..., T], /, *args, **kwargs) -> T:
        """``fn(session=..., ...)`` in a transaction that only reads: on SQLite a deferred one,
        which takes no write lock (``transact``'s take it up front), for reads that are long or
        that come before slow work (the duplicate check's 500 reports). A write in it may fail."""
        with unavailable_as_one(), self.engine.connect().execution_options(**{READ_ONLY: True}) as conn, \
                Session(bind=conn, expire_on_commit=False) as session, session.begin():
            return fn(*args, session=session, **kwargs)

    async def run(self, fn: Callable[..., T], /, *args, **kwargs) -> T:
        """``transact`` in a worker thread, so the event loop never blocks on the database; for
        callers someone waits on (a Slack request, a webhook). Raises DatabaseUnavailable after
        ``answer_seconds`` (``ANSWERED_SECONDS`` in a task whose person has had their answer): the
        thread is then left to finish or fail on its own, so the work may still commit later (every
        write here is keyed to be safe to repeat)."""
        return await self._in_thread(partial(self.transact, fn, *args, **kwargs), self._deadline(), writes=True)

    async def run_read(self, fn: Callable[..., T], /, *args, **kwargs) -> T:
        """``read`` in a worker thread, with ``run``'s deadline."""
        return await self._in_thread(partial(self.read, fn, *args, **kwargs), self._deadline())

    def _deadline(self) -> float | None:
        seconds = self.answer_seconds
        return max(seconds, ANSWERED_SECONDS) if seconds is not None and _answered.get() else seconds

    async def run_within(self, seconds: float, fn: Callable[..., T], /, *args, **kwargs) -> T:
        """``run`` with its own deadline, on SQLite too: raises DatabaseUnavailable after
        ``seconds`` (the thread is left to finish or fail on its own). For a check that must not
        hold an ack, where cancelling ``run`` would wait for its thread: on SQLite up to the busy
        timeout (5 s) behind another process's write lock."""
        return await self._in_thread(partial(self.transact, fn, *args, **kwargs), seconds, writes=True)

    async def run_repeating(self, seconds: float, fn: Callable[..., T], /, *args, **kwargs) -> T:
        """``run_within`` for work keyed to be safe to repeat (a report's intake key): an attempt
        whose outcome is unknown (``OutcomeUnknown``: its COMMIT's reply lost) is repeated, as the
        database comes back, until ``seconds`` have passed; a repeat finds what the first wrote.
        Raises DatabaseUnavailable when nothing was written (so "try again" is true), and
        OutcomeUnknown when time ran out after an unknown outcome, even if the last attempt was
        refused outright."""
        deadline = time.monotonic() + seconds
        pause, unknown = 0.25, None
        while True:
            try:
                return await self.run_within(max(0.1, deadline - time.monotonic()), fn, *args, **kwargs)
            except DatabaseUnavailable as exc:
                unknown = exc if isinstance(exc, OutcomeUnknown) else unknown
                if unknown is None:
                    raise
                if time.monotonic() + pause >= deadline:
                    raise unknown from exc
                await asyncio.sleep(pause)  # the database coming back after a cut
                pause = min(2 * pause, 2.0)

    def background(self, fn: Callable[..., T], /, *args, **kwargs) -> T:
        """``transact`` for work nobody waits on within seconds (scheduled jobs, the dashboard,
        reports, exports): its queries may use at most ``background_workers`` PostgreSQL parallel
        workers, so that one of them scanning a million rows leaves the server's other CPUs to the
        queries people wait on. On a 2-CPU machine PostgreSQL's default (2) made the acks around a
        first dashboard load 1.4x slower and the analytics themselves no faster: friction_scores at
        1M points 2.4 s with parallel workers, 1.7 s without (bench/README.md, issue #15)."""
        return self.transact(self._without_spare_workers, fn, *args, **kwargs)

    def _without_spare_workers(self, fn: Callable[..., T], /, *args, session: Session, **kwargs) -> T:
        if self.engine.dialect.name == "postgresql":  # SET LOCAL: until this transaction ends
            session.execute(text(f"SET LOCAL max_parallel_workers_per_gather = {self.background_workers:d}"))
        return fn(*args, session=session, **kwargs)

    async def work(self, fn: Callable[..., T], /, *args, **kwargs) -> T:
        """``background`` in a worker thread with no deadline: for work nobody waits on (scheduled
        jobs, the dashboard), which may legitimately take longer than a person would wait."""
        return await self._in_thread(partial(self.background, fn, *args, **kwargs), None)

    async def check(self) -> None:
        """Raise DatabaseUnavailable unless a ``SELECT 1`` answers within ``answer_seconds``."""
        await self._in_thread(self.ping, self.answer_seconds)

    async def _in_thread(self, call: Callable[[], T], seconds: float | None, *, writes: bool = False) -> T:
        """``call()`` in a worker thread, given up on after ``seconds``: DatabaseUnavailable, or
        OutcomeUnknown if it ``writes`` (the abandoned thread may still commit)."""
        if seconds is None:
            return await anyio.to_thread.run_sync(call)
        try:
            with anyio.fail_after(seconds):
                return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
        except TimeoutError:
            raise (OutcomeUnknown if writes else DatabaseUnavailable)(f"no answer within {seconds:g} s") from None

    def ping(self) -> None:
        """One ``SELECT 1``; raises DatabaseUnavailable if the database cannot be reached."""
        with unavailable_as_one(), self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def migrate(self) -> None:
        command.upgrade(alembic_config(self.engine), "head")

    def dispose(self) -> None:
        self.engine.dispose()

    async def dispose_async(self) -> None:
        if self._async_engine is not None:
            await self._async_engine.dispose()
            self._async_engine = None


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg
