"""A host that dies holding its PostgreSQL connections (issue #26, item 1): the transaction it was
in stays open on the server, "idle in transaction", holding the unique keys it inserted (here an
event's id), until the server notices the connection is gone: by TCP keepalive, about two hours by
default. Every replay of that event (``tests/runtime/test_acked_kept.py``: it was spooled before its ack)
would wait on those locks, and the events behind it with it. The bot's sessions ask the server to
end such a session after ``idle_in_transaction_seconds``; here 2 s."""

import threading
import time

from sqlalchemy import text

from storage import friction
from storage.database import Database


def test_a_transaction_left_open_by_a_dead_host_is_ended_by_the_server(pg_url):
    dead = Database(pg_url, idle_in_transaction_seconds=2)
    with dead.engine.begin() as conn:
        conn.execute(text("DELETE FROM processed_event WHERE event_id = 'Ev0DEADHOST1'"))
    conn = dead.engine.connect()
    conn.begin()
    conn.execute(text("INSERT INTO processed_event (event_id, received_at) VALUES ('Ev0DEADHOST1', now())"))
    # The host dies here: not one more byte on this connection (it is left open, as the server sees it).

    alive = Database(pg_url)
    result: dict = {}

    def replay() -> None:
        started = time.monotonic()

        def store(*, session):
            session.execute(text("SET LOCAL lock_timeout = '20s'"))  # the replay's own patience, for this test
            return friction.first_delivery(session=session, event_id="Ev0DEADHOST1")

        try:
            result["first"] = alive.transact(store)
        except Exception as exc:  # noqa: BLE001 - reported below
            result["error"] = exc
        result["seconds"] = time.monotonic() - started

    worker = threading.Thread(target=replay)
    worker.start()
    worker.join(timeout=30)
    try:
        assert result.get("first") is True, result  # the dead host's insert was rolled back: this one stores it
        assert result["seconds"] < 10, result
    finally:
        conn.invalidate()
        dead.dispose()
        alive.dispose()
