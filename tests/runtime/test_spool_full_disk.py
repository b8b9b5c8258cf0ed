"""The spool on a full disk (issue #26, item 3), on a real, small tmpfs: events acked and spooled
during a PostgreSQL outage; the disk then fills up to the last byte. When the database is back,
the replay still drains the spool (its bookkeeping writes use the reserve the spool kept at
start), new events are handled before their answer instead of being refused 503, the trouble is
one log line and shows in /healthz and /metrics, and once space is freed the spool takes its
reserve back by itself."""

import contextlib
import errno
import logging
import os
import subprocess
import uuid

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.runtime.app import create_app
from tests.conftest import make_settings, serving_bot
from tests.fake_slack import TOKEN
from tests.runtime.test_outage import OTHER, POLICY, deliveries, pg_db, proxy, stored  # noqa: F401 - fixtures
from tests.slack_requests import event_callback

TMPFS_BYTES = 1024 * 1024


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB tmpfs of its own (needs root and mount(8)); skipped, saying why, where it cannot be had."""
    where = tmp_path / "small-disk"
    where.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(where)],
                       check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        pytest.skip(f"cannot mount a small tmpfs here (needs root and mount(8)): {exc} {detail.decode(errors='replace')}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=10)


def fill(disk) -> list:
    """Fill ``disk`` to the last byte; the files written (delete them to free the space)."""
    files, n = [], 0
    for size in (65536, 4096, 512, 1):
        while True:
            path = disk / f"filler-{n}"
            n += 1
            try:
                with open(path, "wb") as f:
                    f.write(b"\1" * size)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_size < size:
                        path.unlink()
                break
            files.append(path)
    return files


@pytest.fixture
async def disk_bot(fake_slack, pg_db, small_disk):  # noqa: F811
    settings = make_settings(fake_slack, pg_db, event_spool_path=small_disk / "events.spool")
    app, deps = create_app(settings, POLICY, pg_db, client=AsyncWebClient(token=TOKEN, base_url=settings.slack_api_url))
    async with serving_bot(app, deps, fake_slack, pg_db) as b:
        yield b


async def test_the_replay_drains_a_spool_on_a_full_disk_and_recovers_by_itself(disk_bot, proxy, small_disk, caplog):  # noqa: F811
    bot, gate = disk_bot, disk_bot.deps.events
    sent = deliveries(bot.fake, 7)
    proxy.close()
    for event, event_id, _ in sent:
        assert (await bot.post(*event_callback(event, event_id=event_id))).status_code == 200
    await bot.settle()
    assert gate.spool.waiting() == len(sent)
    fillers = fill(small_disk)
    assert os.statvfs(small_disk).f_bavail == 0

    caplog.set_level(logging.WARNING, logger="bot.runtime.spool")
    proxy.open()
    assert await gate.replay_once() == len(sent)  # its bookkeeping on the full disk: the reserve
    await bot.settle()
    assert sorted(p.text for p in stored(bot.db)) == sorted(text for *_, text in sent) and gate.spool.held() == 0
    problems = [r for r in caplog.records if r.name == "bot.runtime.spool" and r.levelno >= logging.ERROR]
    assert len(problems) == 1 and "disk full" in problems[0].getMessage(), [r.getMessage() for r in problems]
    health = (await bot.http.get("/healthz")).json()
    assert health["ok"] is True and "disk full" in health["spool"]["problem"]
    assert "pf_event_spool_ok 0.0" in (await bot.http.get("/metrics")).text

    # Slack's next event with the disk still full and the database answering: stored, not refused.
    ts = "1700007000.000100"
    bot.fake.add_message(OTHER, ts, "arrived on a full disk")
    resp = await bot.post(*event_callback(__import__("tests.slack_requests", fromlist=["reaction_added"]).reaction_added(
        channel=OTHER, ts=ts), event_id=f"Ev{uuid.uuid4().hex[:10].upper()}"))
    assert resp.status_code == 200
    assert "arrived on a full disk" in [p.text for p in stored(bot.db)]  # before the answer, not after

    for path in fillers:  # space is freed: the next tick takes the reserve back
        path.unlink()
    assert await __import__("anyio").to_thread.run_sync(gate.spool.restore_reserve)
    health = (await bot.http.get("/healthz")).json()
    assert health["spool"]["problem"] is None and "pf_event_spool_ok 1.0" in (await bot.http.get("/metrics")).text
    assert gate.spool.reserve_path.stat().st_size == gate.spool.reserve_bytes
