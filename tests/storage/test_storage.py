"""storage.friction through Database.transact, on SQLite and PostgreSQL."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlmodel import select

from storage import outbox
from storage.database import Database, DatabaseUnavailable
from storage.friction import (
    FrictionDraft,
    file_friction,
    first_delivery,
    get_point,
    reports_of,
    update_details,
)
from storage.models import (
    FrictionChange,
    FrictionPoint,
    OutboxMessage,
    ProcessedEvent,
    Reporter,
    Severity,
    Source,
    as_utc,
    utcnow,
)


def draft(key: str = "view-1", user: str = "U1", **kw) -> FrictionDraft:
    fields = dict(team_id="T1", filed_by=user, reporter_id=user, text="the deploy is slow",
                  source=Source.command, intake_key=key)
    return FrictionDraft(**(fields | kw))


def file(db: Database, d: FrictionDraft):
    return db.transact(file_friction, draft=d)


def rows(db: Database, model) -> list:
    with db.session() as s:
        return list(s.exec(select(model).order_by(*model.__table__.primary_key.columns)).all())


def reload(db: Database, point_id: int) -> FrictionPoint:
    return db.transact(get_point, point_id=point_id)


def tags_of(point: FrictionPoint) -> list[tuple[str, bool]]:
    return [(t.category, t.automatic) for t in point.tags]


def race(db: Database, drafts: list[FrictionDraft]) -> list:
    """File every draft at once, one thread each; return results, or the exceptions that escaped."""
    barrier = threading.Barrier(len(drafts))

    def one(d):
        barrier.wait()
        return file(db, d)

    with ThreadPoolExecutor(len(drafts)) as pool:
        futures = [pool.submit(one, d) for d in drafts]
        return [f.exception() or f.result() for f in futures]


def test_file_friction_creates_point_reporter_tags_and_history(db):
    before = utcnow()
    filed = file(db, draft(categories=("ci", "deploys", "ci"), auto_categories=("docs",), severity=Severity.high))
    after = utcnow()
    assert filed.created and filed.new_reporter
    point = reload(db, filed.point.id)
    assert point.text == "the deploy is slow" and point.severity == "high" and point.status == "new"
    assert tags_of(point) == [("ci", False), ("deploys", False)]  # chosen, deduplicated; guesses dropped
    assert [(r.user_id, r.team_id) for r in point.reporters] == [("U1", "T1")]
    [change] = rows(db, FrictionChange)
    assert (change.friction_point_id, change.action, change.new, change.actor) == (point.id, "filed", "new", "U1")
    [reporter] = rows(db, Reporter)
    for stamp in (point.created_at, point.updated_at, change.at, reporter.reported_at):
        assert before <= as_utc(stamp) <= after  # stored as UTC, read back as UTC


def test_auto_categories_become_automatic_tags_when_none_chosen(db):
    point = reload(db, file(db, draft(auto_categories=("deploys", "environments"))).point.id)
    assert tags_of(point) == [("deploys", True), ("environments", True)]


def test_same_intake_key_twice_files_once(db):
    first = file(db, draft())
    again = file(db, draft(text="double click"))
    assert (again.created, again.new_reporter, again.point.id) == (False, False, first.point.id)
    assert len(rows(db, FrictionPoint)) == 1 and len(rows(db, Reporter)) == 1
    assert len(rows(db, FrictionChange)) == 1


def test_another_user_with_same_key_becomes_a_second_reporter_once(db):
    first = file(db, draft())
    other = file(db, draft(user="U2"))
    repeat = file(db, draft(user="U2"))
    assert (other.created, other.new_reporter) == (False, True)
    assert (repeat.created, repeat.new_reporter) == (False, False)
    assert other.point.id == repeat.point.id == first.point.id
    assert [r.user_id for r in reload(db, first.point.id).reporters] == ["U1", "U2"]


def test_concurrent_filing_of_one_intake_key_makes_one_point(db):
    results = race(db, [draft(text=f"try {i}") for i in range(8)])
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, f"escaped: {errors!r}"
    assert len(rows(db, FrictionPoint)) == 1
    assert sum(r.created for r in results) == 1
    assert {r.point.id for r in results} == {rows(db, FrictionPoint)[0].id}
    assert len(rows(db, Reporter)) == 1 and len(rows(db, FrictionChange)) == 1


def test_concurrent_second_reporter_is_added_once(db):
    """Slack retrying the same intake for a second person while the first retry is in flight."""
    point_id = file(db, draft()).point.id
    results = race(db, [draft(user="U2") for _ in range(8)])
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, f"escaped: {errors!r}"
    assert [r.user_id for r in rows(db, Reporter)] == ["U1", "U2"]
    assert {r.point.id for r in results} == {point_id}


def test_update_details_replaces_the_guesses(db):
    point_id = file(db, draft(auto_categories=("deploys", "ci"))).point.id
    new = draft(text="details: ✨ much worse", severity=Severity.blocker, minutes_lost=90,
                categories=("deploys", "networking"), link_url="https://example.com/x")
    updated = db.transact(update_details, point_id=point_id, draft=new)
    assert updated is not None and updated.id == point_id
    point = reload(db, point_id)
    assert (point.text, point.severity, point.minutes_lost, point.link_url) == (
        "details: ✨ much worse", "blocker", 90, "https://example.com/x")
    assert tags_of(point) == [("deploys", False), ("networking", False)]
    assert as_utc(point.updated_at) > as_utc(point.created_at)


def test_update_details_of_unknown_point_is_none(db):
    assert db.transact(update_details, point_id=12345, draft=draft()) is None
    assert rows(db, FrictionPoint) == []


def test_reports_of_lists_only_that_users_points_newest_first(db):
    mine = [file(db, draft(key=f"k{i}")).point.id for i in range(3)]
    file(db, draft(key="theirs", user="U2"))
    shared = file(db, draft(key="shared", user="U3")).point.id
    file(db, draft(key="shared", user="U1"))  # U1 hit it too
    got = [p.id for p in db.transact(reports_of, user_id="U1")]
    assert got == [shared, *reversed(mine)]
    assert [p.id for p in db.transact(reports_of, user_id="U1", limit=2)] == [shared, mine[2]]
    assert db.transact(reports_of, user_id="UNOBODY") == []


def test_first_delivery_is_true_once_per_event(db):
    assert db.transact(first_delivery, event_id="Ev1") is True
    assert db.transact(first_delivery, event_id="Ev1") is False
    assert db.transact(first_delivery, event_id="Ev2") is True
    with db.session() as s:
        assert sorted(s.exec(select(ProcessedEvent.event_id)).all()) == ["Ev1", "Ev2"]


@pytest.mark.parametrize("text", [
    "deploy 🚀💥 broke — naïve café, 日本語, עברית, e\u0301, 👩🏽‍💻 & <tags> &amp; \"quotes\"\n\ttabs",
    ("é🙂" + "x" * 98) * 30,  # 3000 characters, some of them multi-byte
])
def test_text_round_trips_exactly(db, text):
    point_id = file(db, draft(text=text)).point.id
    assert reload(db, point_id).text == text


def test_transact_writes_nothing_when_the_function_raises(db):
    def add_then_fail(*, session):
        session.add(FrictionPoint(team_id="T1", filed_by="U1", text="x", source=Source.command, intake_key="k"))
        session.flush()
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        db.transact(add_then_fail)
    assert rows(db, FrictionPoint) == []


def test_transact_is_atomic_across_savepoints(db):
    """An intake records the event, files the point and queues the DM in one transaction; if it
    fails, none of it may stay, or Slack's retry of the event is dropped as already handled."""

    def intake_then_fail(*, session):
        assert first_delivery(session=session, event_id="Ev9")
        filed = file_friction(session=session, draft=draft())
        outbox.enqueue(session=session, dedupe_key="dm", method="chat.postMessage",
                       payload={"channel": "U1", "text": "thanks"}, friction_point_id=filed.point.id)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        db.transact(intake_then_fail)
    assert (rows(db, FrictionPoint), rows(db, OutboxMessage), rows(db, ProcessedEvent)) == ([], [], [])
    assert db.transact(first_delivery, event_id="Ev9") is True


def test_unreachable_database_raises_database_unavailable():
    db = Database("postgresql+psycopg://postgres@127.0.0.1:1/x")
    try:
        with pytest.raises(DatabaseUnavailable):
            db.transact(reports_of, user_id="U1")
    finally:
        db.dispose()


def test_a_connection_lost_at_commit_is_an_unknown_outcome_not_a_plain_outage(db):
    """A connection that drops while COMMIT's reply is on its way (found through a proxy delaying
    PostgreSQL's replies, cut at random): the transaction may be written. That is OutcomeUnknown,
    so no caller says "not saved, try again" to it; a failure before the commit stays a plain
    DatabaseUnavailable (nothing written)."""
    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError

    from storage.database import OutcomeUnknown

    def lost(*_args):
        raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))

    def add(*, session):
        session.add(ProcessedEvent(event_id="Ev0COMMIT1"))

    def add_then_lose(*, session):
        add(session=session)
        lost()

    event.listen(db.engine, "commit", lost)
    try:
        with pytest.raises(OutcomeUnknown, match="at commit"):
            db.transact(add)
    finally:
        event.remove(db.engine, "commit", lost)
    with pytest.raises(DatabaseUnavailable) as before:
        db.transact(add_then_lose)
    assert not isinstance(before.value, OutcomeUnknown)


def test_background_work_leaves_the_database_servers_other_cpus_to_the_acks(pg_url):
    """The dashboard, the digest and other background work may not use PostgreSQL's parallel
    workers (unless DATABASE_BACKGROUND_WORKERS says so): on a small server they starved the
    queries people wait on. Requests' own transactions keep the server's setting."""
    import asyncio

    from sqlalchemy import text

    from bot.runtime.settings import ConfigError, DatabaseSettings, load_settings

    def show(*, session):
        return session.execute(text("SHOW max_parallel_workers_per_gather")).scalar()

    db = load_settings(DatabaseSettings, database_url=pg_url).database()
    wider = load_settings(DatabaseSettings, database_url=pg_url, database_background_workers=3).database()
    try:
        server = db.transact(show)
        assert server != "0", "the test needs a server that allows parallel workers (PostgreSQL's default is 2)"
        assert db.background(show) == "0"
        assert asyncio.run(db.work(show)) == "0"
        assert db.transact(show) == server  # SET LOCAL: the pooled connection goes back as it was
        assert asyncio.run(db.run(show)) == server
        assert wider.background(show) == "3"
    finally:
        db.dispose()
        wider.dispose()
    with pytest.raises(ConfigError) as info:
        load_settings(DatabaseSettings, database_url=pg_url, database_background_workers=-1)
    assert "DATABASE_BACKGROUND_WORKERS" in str(info.value) and "\n" not in str(info.value)
