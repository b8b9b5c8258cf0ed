"""The database handle: one engine, sessions per unit of work, run off the event loop."""

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import anyio.to_thread
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, text

T = TypeVar("T")

MIGRATIONS = Path(__file__).parent / "migrations"


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


class DatabaseUnavailable(Exception):
    """The database could not be reached; the caller tells the user to try again."""


def make_engine(url: str) -> Engine:
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
            # (busy timeout) instead of one failing or losing the other's update.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # A short connect timeout: a user waiting in Slack gets "try again" rather than silence.
    return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 3})


def make_async_engine(url: str) -> AsyncEngine:
    """The same database for libraries that want asyncio (slack-sdk's installation store):
    aiosqlite for SQLite, psycopg 3's async mode for PostgreSQL."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return create_async_engine(parsed.set(drivername="sqlite+aiosqlite"), connect_args={"timeout": 5})
    return create_async_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": 3})


class Database:
    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self._async_engine: AsyncEngine | None = None

    @property
    def async_engine(self) -> AsyncEngine:
        """Made on first use: a one-workspace bot never needs it."""
        if self._async_engine is None:
            self._async_engine = make_async_engine(self.url)
        return self._async_engine

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def transact(self, fn: Callable[..., T], /, *args, **kwargs) -> T:
        """Run ``fn(session=..., ...)`` in one transaction: all of it is written, or none."""
        try:
            with self.session() as session, session.begin():
                return fn(*args, session=session, **kwargs)
        except OperationalError as exc:
            raise DatabaseUnavailable(" ".join(str(exc.orig).split())[:200]) from exc

    async def run(self, fn: Callable[..., T], /, *args, **kwargs) -> T:
        """``transact`` in a worker thread, so the event loop never blocks on the database."""
        return await anyio.to_thread.run_sync(partial(self.transact, fn, *args, **kwargs))

    def ping(self) -> None:
        with self.engine.connect() as conn:
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
