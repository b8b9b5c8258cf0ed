"""The event spool on its own (bot/runtime/spool.py) and its refusal over HTTP: bounded, one row
per event_id, oldest first, durable across a reopen, and an edited body is never replayed."""

import pytest
from sqlmodel import select

from bot.runtime.spool import EventSpool, SpoolFull, signature_holds
from storage.models import FrictionPoint
from tests.slack_requests import SIGNING_SECRET, event_callback, reaction_added


def signed_event(event_id: str) -> tuple[bytes, dict]:
    body, headers = event_callback(reaction_added(channel="C0OTHER001", ts="1700000000.000100"), event_id=event_id)
    return body.encode(), headers


def test_kept_in_order_once_each_and_durable(tmp_path):
    spool = EventSpool(tmp_path / "s.spool", max_bytes=1_000_000)
    assert spool.held() == 0 and not (tmp_path / "s.spool").exists()  # nothing written until needed
    for n in (1, 2, 1):  # Slack's retry of event 1 is the same row
        body, headers = signed_event(f"Ev{n}")
        spool.keep(event_id=f"Ev{n}", body=body, headers=headers, signed=True)
    assert spool.held() == 2
    first = spool.take()
    spool.close()  # a restart with "Ev1" half replayed
    again = EventSpool(tmp_path / "s.spool", max_bytes=1_000_000)
    assert again.held() == 2 and again.reclaim() == 0  # its claim is this (living) process's: left alone
    assert [again.take().event_id, again.take()] == ["Ev2", None]
    with again._lock:  # as if the process that took Ev1 had been killed
        again._conn.execute("UPDATE spooled_event SET owner = '1999999999:0' WHERE event_id = 'Ev1'")
    assert again.reclaim() == 1
    assert [again.take().event_id, again.take()] == ["Ev1", None]
    assert first.event_id == "Ev1" and signature_holds(SIGNING_SECRET.encode(), first)


def test_a_live_event_queues_behind_waiting_ones_and_a_dead_owners_go_again(tmp_path):
    spool = EventSpool(tmp_path / "s.spool", max_bytes=1_000_000)
    body, headers = signed_event("Ev1")
    seq, state = spool.keep(event_id="Ev1", body=body, headers=headers, signed=True, live=True)
    assert state == "live" and spool.counts()["live"] == 1
    assert spool.finish(seq, "live") and spool.held() == 0  # handled: gone
    spool.keep(event_id="Ev2", body=body, headers=headers, signed=True)  # waits for the database
    assert spool.keep(event_id="Ev3", body=body, headers=headers, signed=True, live=True)[1] == "waiting"
    assert spool.keep(event_id="Ev3", body=body, headers=headers, signed=True, live=True) is None  # Slack's retry
    seq, _ = spool.keep(event_id="Ev4", body=body, headers=headers, signed=True, live=True)
    with spool._lock:  # its process was killed after the ack
        spool._conn.execute("UPDATE spooled_event SET state = 'live', owner = '1999999999:0' WHERE seq = ?", (seq,))
    assert spool.reclaim() == 1
    assert [spool.take().event_id for _ in range(3)] == ["Ev2", "Ev3", "Ev4"]


def test_a_persons_request_is_replayed_only_once_acked(tmp_path):
    """A click or command is kept ``held`` before its ack: its process killed then, it is dropped
    (Slack showed an error; the person sends it again); once ``acked`` it is ``live`` and replayed."""
    spool = EventSpool(tmp_path / "s.spool", max_bytes=1_000_000)
    body = b'{"type": "block_actions"}'
    never, _ = spool.keep(event_id="request:a", body=body, headers={}, signed=False, live=True, in_order=False, before_ack=True)
    acked, _ = spool.keep(event_id="request:b", body=body, headers={}, signed=False, live=True, in_order=False, before_ack=True)
    ended, _ = spool.keep(event_id="request:c", body=body, headers={}, signed=False, live=True, in_order=False, before_ack=True)
    assert spool.counts()["held"] == 3
    spool.acked(acked)
    assert spool.finish(ended, "live") and spool.held() == 2  # its listener ended before the ack was marked: gone
    spool.acked(ended)  # the mark after the listener's end changes nothing
    with spool._lock:  # the process was killed
        spool._conn.execute("UPDATE spooled_event SET owner = '1999999999:0'")
    assert spool.reclaim() == 1 and spool.counts()["held"] == 0
    assert [spool.take().event_id, spool.take()] == ["request:b", None]



def test_a_persons_request_kept_again_leaves_the_first_copy_as_it_is(tmp_path):
    """The same signed request again (a replay, checked while it is kept) is not kept twice, and the
    first copy, its listener running, stays ``live`` and its own: moved back to ``waiting``, it was
    replayed after its listener had ended, and applied twice."""
    spool = EventSpool(tmp_path / "s.spool", max_bytes=1_000_000)
    body = b'{"command": "/platform-feedback"}'
    first, _ = spool.keep(event_id="request:v0=1", body=body, headers={}, signed=False, live=True, in_order=False, before_ack=True)
    spool.acked(first)
    assert spool.keep(event_id="request:v0=1", body=body, headers={}, signed=False, live=True, in_order=False, before_ack=True) is None
    assert spool.state_of(first) == "live" and spool.waiting() == 0
    assert spool.finish(first, "live") and spool.held() == 0

def test_a_replay_that_meets_the_outage_puts_the_event_back(tmp_path):
    spool = EventSpool(tmp_path / "s.spool", max_bytes=1_000_000)
    body, headers = signed_event("Ev1")
    spool.keep(event_id="Ev1", body=body, headers=headers, signed=True)
    entry = spool.take()
    assert spool.keep(event_id="Ev1", body=body, headers=headers, signed=True) is None  # the listener failed again
    assert spool.finish(entry.seq) is False and spool.held() == 1
    assert spool.finish(spool.take().seq) is True and spool.held() == 0


def test_bounded_and_tamper_evident(tmp_path):
    body, headers = signed_event("Ev1")
    spool = EventSpool(tmp_path / "s.spool", max_bytes=len(body) + 10)
    spool.keep(event_id="Ev1", body=body, headers=headers, signed=True)
    with pytest.raises(SpoolFull):
        spool.keep(event_id="Ev2", body=signed_event("Ev2")[0], headers=headers, signed=True)
    entry = spool.take()
    forged = type(entry)(entry.seq, entry.event_id, entry.body.replace(b"ticket", b"tickex"), entry.headers, True, entry.kept_at)
    assert signature_holds(SIGNING_SECRET.encode(), entry) and not signature_holds(SIGNING_SECRET.encode(), forged)


@pytest.mark.parametrize("settings_overrides", [{"event_spool_max_mb": 1}])
async def test_a_full_spool_with_the_database_up_handles_the_event_before_its_answer(bot, settings_overrides):
    bot.deps.events.spool.max_bytes = 10  # smaller than any event
    bot.deps.events.spool.keep(event_id="EvOLD", body=b"{}", headers={}, signed=False)  # something waits already
    ts = "1700000000.000200"
    bot.fake.add_message("C0OTHER001", ts, "kept by the database before the answer")
    resp = await bot.post(*event_callback(reaction_added(channel="C0OTHER001", ts=ts), event_id="EvNEW"))
    assert resp.status_code == 200 and bot.deps.events.spool.held() == 1
    with bot.db.session() as s:  # stored before the 200, not after it
        assert [p.text for p in s.exec(select(FrictionPoint)).all()] == ["kept by the database before the answer"]
