"""Issue #26 item 4, at its kind: a tracker delivery's body is not read on the serving process's
interpreter once it is large (``bot.closing.webhooks.READ_ON_LOOP``): a 64 KiB body costs 1–5 ms in
single C calls (a regular expression's scan) that a worker thread would hold the interpreter lock
for, and every ack waits behind them. Read in the reader process instead; a reader killed is
replaced; a reader that cannot run leaves the route answering (read in a thread, said once); a
body the reader does not read in time is refused, and the reader replaced for the next one."""

import logging
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pytest

from bot.closing import webhooks
from bot.trackers import github
from tests import tracker_requests as tr
from tests.closing import slow_reader
from tests.closing.test_closing import deliver, file_and_link, notices_to, policy, settings_overrides  # noqa: F401
from tests.runtime.test_serve_workers import alive
from tests.slack_requests import USER
from tests.waiting import WAIT_SECONDS, wait_for

PADDING = " " * 65_000  # after the reference: the body is large, the reference still read


@pytest.fixture
def read_here(monkeypatch) -> list[str]:
    """Bodies whose closing references this process read (the reader process imports its own copy)."""
    seen: list[str] = []
    original = github.counted_references

    def counted(body, *args, **kwargs):
        seen.append(body)
        return original(body, *args, **kwargs)

    monkeypatch.setattr(github, "counted_references", counted)
    return seen


def merged(number: int, body: str) -> tuple[bytes, dict]:
    return tr.github("pull_request", tr.github_pr_merged("acme/platform", number, body))


async def test_a_large_body_is_read_in_the_reader_process(bot, read_here):
    await file_and_link(bot, "deploy logs are truncated")
    body, headers = merged(77, "Fixes #42" + PADDING + "x")
    assert len(body) > webhooks.READ_ON_LOOP
    resp = await deliver(bot, "github", body, headers)
    assert resp.status_code == 200, resp.text
    assert len(notices_to(bot, USER)) == 1  # the reference was read, and applied
    assert read_here == []  # ... not by this process
    assert webhooks.READER.pids() and os.getpid() not in webhooks.READER.pids()


async def test_a_small_body_is_read_at_once(bot, read_here):
    # The same check sees a read in this process (so the test above can fail).
    await file_and_link(bot, "deploy logs are truncated")
    resp = await deliver(bot, "github", *merged(78, "Fixes #42"))
    assert resp.status_code == 200, resp.text
    assert len(notices_to(bot, USER)) == 1
    assert read_here == ["Fixes #42"]


async def test_a_killed_reader_is_replaced(bot):
    await file_and_link(bot, "deploy logs are truncated")
    assert (await deliver(bot, "github", *merged(79, "Raises a limit." + PADDING))).status_code == 200
    [pid] = webhooks.READER.pids()
    os.kill(pid, signal.SIGKILL)
    resp = await deliver(bot, "github", *merged(80, "Fixes #42" + PADDING + "x"))
    assert resp.status_code == 200, resp.text
    assert len(notices_to(bot, USER)) == 1
    assert pid not in webhooks.READER.pids()


async def test_a_reader_that_cannot_run_leaves_the_route_answering(bot, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise BrokenProcessPool("A child process terminated abruptly")

    monkeypatch.setattr(webhooks.READER, "call", broken)
    monkeypatch.setattr(webhooks, "_said_broken", False)
    await file_and_link(bot, "deploy logs are truncated")
    with caplog.at_level(logging.WARNING, logger="bot.closing.webhooks"):
        for number in (81, 82):
            resp = await deliver(bot, "github", *merged(number, "Fixes #42" + PADDING + "x"))
            assert resp.status_code == 200, resp.text
    assert len(notices_to(bot, USER)) == 1  # the second delivery is the same closure
    said = [r for r in caplog.records if "reader process unavailable" in r.getMessage()]
    assert len(said) == 1


def test_a_runaway_call_ends_the_process_and_the_next_call_gets_a_fresh_one():
    worker = webhooks.READER
    worker.warm_up("bot.trackers").result(timeout=WAIT_SECONDS)
    [pid] = worker.pids()
    with pytest.raises(TimeoutError):
        worker.call(time.sleep, 60, timeout=0.5)
    wait_for(lambda: not alive(pid), what="the runaway reader ended")
    assert worker.call(abs, -3, timeout=WAIT_SECONDS) == 3
    assert pid not in worker.pids()


async def test_a_body_not_read_in_time_is_refused_and_later_ones_are_read(bot, monkeypatch, caplog):
    await file_and_link(bot, "deploy logs are truncated")
    with monkeypatch.context() as m, caplog.at_level(logging.ERROR, logger="bot.closing.webhooks"):
        m.setattr(webhooks, "READ_SECONDS", 0.5)
        m.setattr(webhooks, "read_delivery", slow_reader.read_delivery)  # sleeps in the reader, then reads
        resp = await deliver(bot, "github", *merged(83, "Fixes #42" + PADDING + "x"))
    assert resp.status_code == 400 and "not read within" in resp.text
    assert any("refused" in r.getMessage() for r in caplog.records)
    assert notices_to(bot, USER) == []
    resp = await deliver(bot, "github", *merged(84, "Fixes #42" + PADDING + "x"))
    assert resp.status_code == 200, resp.text
    assert len(notices_to(bot, USER)) == 1


def test_calls_that_meet_one_death_share_one_fresh_process():
    """Eight calls at once after the process was killed: each is answered, by one fresh process (each
    used to start a pool of its own and shut down the one before it)."""
    worker = webhooks.READER
    worker.warm_up("bot.trackers").result(timeout=WAIT_SECONDS)
    [pid] = worker.pids()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), what="the reader killed")
    with ThreadPoolExecutor(8) as callers:
        answers = list(callers.map(lambda n: worker.call(abs, -n, timeout=WAIT_SECONDS), range(8)))
    assert answers == list(range(8))
    assert len(worker.pids()) == 1 and pid not in worker.pids()


def test_the_reader_process_runs_at_the_lowest_cpu_priority():
    """Pure computation nobody waits on within an ack: on a busy machine the serving loop and the
    database get the CPU first (``bot.runtime.cpu``); the bench's worst acks during hostile bursts
    came from CPU contention, not from waiting on the reader."""
    from bot.runtime import cpu

    assert webhooks.READER.call(os.getpriority, os.PRIO_PROCESS, 0, timeout=WAIT_SECONDS) == cpu.NICE
    assert os.getpriority(os.PRIO_PROCESS, 0) != cpu.NICE  # ... not this process
