"""Acked means kept (issue #26, item 1 and its acceptance run), through real ``serve`` processes.

- kill -9 right after the acks: a :ticket: reaction and a help-channel question acked 200 while
  the database's write lock was held (their listeners waiting on it), and a one-line report sent
  then: after a restart both events are stored, and the report was either answered with its
  reference (and stored) or not answered at all, never acked and lost. On SQLite and PostgreSQL.
"""

import concurrent.futures
import sqlite3
import time

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlmodel import select

from storage.database import Database
from storage.models import FrictionPoint
from tests.conftest import TABLES
from tests.fake_slack import FakeSlackServer
from tests.serve_process import HELP, OTHER, Serve
from tests.slack_requests import event_callback, reaction_added, slash_command
from tests.test_help_channel import message


def fresh_database(request, tmp_path, backend: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/bot.db"
    url = request.getfixturevalue("pg_url")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


class WriteLock:
    """Holds the database's write lock for friction reports from another connection, so listeners
    that would store one wait (SQLite: BEGIN IMMEDIATE; PostgreSQL: LOCK TABLE ... EXCLUSIVE)."""

    def __init__(self, url: str):
        self.url = url

    def __enter__(self):
        if self.url.startswith("sqlite"):
            self.conn = sqlite3.connect(self.url.removeprefix("sqlite:///"), isolation_level=None)
            self.conn.execute("BEGIN IMMEDIATE")
        else:
            import psycopg

            self.conn = psycopg.connect(self.url.replace("postgresql+psycopg", "postgresql"))
            self.conn.execute("LOCK TABLE friction_point, processed_event IN EXCLUSIVE MODE")
        return self

    def __exit__(self, *exc):
        self.conn.rollback()
        self.conn.close()


def points(url: str) -> list[FrictionPoint]:
    db = Database(url)
    try:
        with db.session() as s:
            return list(s.exec(select(FrictionPoint).order_by(FrictionPoint.id)).all())
    finally:
        db.dispose()


def wait_for(check, *, timeout: float, what: str, serve: Serve):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    pytest.fail(f"gave up after {timeout} s waiting for {what}; serve log:\n{serve.tail()}")


def post(base: str, body: str, headers: dict, timeout: float = 10) -> httpx.Response | None:
    """The answer, or None if the connection died without one (the process was killed)."""
    try:
        return httpx.post(base + "/slack/events", content=body.encode(), headers=headers, timeout=timeout)
    except httpx.TransportError:
        return None


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_right_after_the_acks_loses_nothing(tmp_path, request, backend):
    url = fresh_database(request, tmp_path, backend)
    with FakeSlackServer() as fake:
        fake.add_message(OTHER, "1700000100.000100", "the runner image lacks git")
        serve = Serve(tmp_path, fake.url, url)
        serve.start()
        try:
            with WriteLock(url), concurrent.futures.ThreadPoolExecutor(1) as pool:
                report = pool.submit(post, serve.base, *slash_command("the deploy queue is stuck again", fake_url=fake.url))
                reaction = post(serve.base, *event_callback(reaction_added(channel=OTHER, ts="1700000100.000100"), event_id="Ev0KILL0001"))
                question = post(serve.base, *event_callback(message("how do I rotate the deploy key?", ts="1700000200.000100"),
                                                            event_id="Ev0KILL0002"))
                assert (reaction.status_code, question.status_code) == (200, 200)  # acked: Slack will not send them again
                serve.kill_all()  # their listeners were waiting for the write lock
                answer = report.result(timeout=30)
            serve.start()
            stored = wait_for(lambda: (found := points(url)) and len(found) >= 2 and found, timeout=30,
                              what="the two acked events stored after the restart", serve=serve)
        finally:
            serve.stop()
    texts = sorted(p.text for p in stored)
    assert {"the runner image lacks git", "how do I rotate the deploy key?"} <= set(texts), texts
    if answer is not None and answer.status_code == 200:  # acked: it must say it was kept, and be
        said = answer.json().get("text", "") if answer.headers.get("content-type", "").startswith("application/json") else answer.text
        assert "FB-" in said or "try again" in said, f"a report acked with {said!r}: the person is told nothing"
        if "FB-" in said:
            assert "the deploy queue is stuck again" in texts
