"""``LateAck`` (bot.runtime.late_answer): an ack that comes after Bolt answered without it goes to
the response URL; one in time goes nowhere else; through a real ``serve``, with kill -9 too."""

import asyncio
import concurrent.futures
import contextlib
import json
import signal
from urllib.parse import parse_qsl

import psycopg
import pytest
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.listener import asyncio_runner
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.policy import Hosts, Policy
from bot.runtime.event_gate import SpoolingSocketModeHandler
from bot.runtime.late_answer import LateAck, message_of
from bot.runtime.listening import UNREACHABLE
from storage.database import ANSWER_SECONDS, Database
from tests.fake_slack import FakeSlackServer
from tests.fake_socket_mode import FakeSocketMode
from tests.runtime.test_acked_kept import WriteLock, fresh_database, points, post, spool_empty, told, wait_for
from tests.runtime.test_outage import build
from tests.serve_process import Serve
from tests.slack_requests import USER, block_actions, interactive, modal_values, slash_command, view_submission
from tests.waiting import WAIT_SECONDS, until


def context(with_url: bool = True) -> tuple[AsyncBoltContext, list]:
    sent: list = []

    async def respond(message):
        sent.append(message)

    ctx = AsyncBoltContext()
    if with_url:
        ctx["response_url"] = "https://hooks.slack.com/commands/T0/1/x"
    ctx["respond"] = respond
    return ctx, sent


async def test_an_ack_in_time_is_the_answer_and_nothing_else_is_sent():
    ctx, sent = context()
    ack = LateAck(ctx)
    answer = await ack(text="Filed FB-1", response_type="ephemeral")
    assert await ack.answered(answer) is False
    assert sent == []


async def test_an_ack_after_bolt_answered_without_it_goes_to_the_response_url_once():
    ctx, sent = context()
    ack = LateAck(ctx)
    assert await ack.answered(BoltResponse(status=404, body={"error": "unhandled request"})) is True
    assert sent == []  # nothing acked yet
    await ack(text="Filed FB-1", blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "Filed FB-1"}}])
    assert sent == [{"text": "Filed FB-1", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Filed FB-1"}}],
                     "response_type": "ephemeral"}]
    assert await ack.answered(BoltResponse(status=200, body="")) is True and len(sent) == 1


async def test_an_ack_between_bolt_s_answer_and_the_route_s_look_is_sent_by_the_look():
    ctx, sent = context()
    ack = LateAck(ctx)
    await ack("Filed FB-2")  # Bolt had already returned its own answer
    assert await ack.answered(BoltResponse(status=404, body="")) is True
    assert sent == [{"text": "Filed FB-2", "response_type": "ephemeral"}]


async def test_what_a_response_url_cannot_carry_is_logged_not_sent(caplog):
    ctx, sent = context()
    ack = LateAck(ctx)
    await ack.answered(BoltResponse(status=404, body=""))
    await ack(response_action="errors", errors={"text": "too long"})  # a form's answer
    await ack()  # an empty ack: nothing missed
    nowhere, _ = context(with_url=False)
    other = LateAck(nowhere)
    await other.answered(BoltResponse(status=404, body=""))
    await other(text="Filed FB-3")
    assert sent == []
    assert [r.getMessage() for r in caplog.records] == [
        "an answer came after Slack's 3 s and has no way to the person (a form's or a menu's answer)",
        "an answer came after Slack's 3 s and has no way to the person (no response URL)",
    ]


def test_message_of_keeps_what_a_response_url_takes():
    assert message_of(BoltResponse(status=200, body={"text": "a", "response_type": "in_channel", "unfurl_links": False})) == \
        {"text": "a", "response_type": "in_channel", "unfurl_links": False}
    assert message_of(BoltResponse(status=200, body={"options": []})) is None
    assert message_of(BoltResponse(status=500, body="a")) is None


def test_an_ack_once_made_stands():
    """Bolt's runner sets ``ack.response`` back to None when a listener that had acked raises: the ack stands."""
    ack = LateAck(context()[0])
    assert ack.response is None
    answer = BoltResponse(status=200, body="")
    ack.response = answer
    ack.response = None
    assert ack.response is answer


async def test_a_listener_that_acked_then_failed_is_answered_with_its_ack_at_once(bot, caplog):
    """A forged *Works for me* value (not a number) fails after the listener's ``ack()``: answered
    with that ack, not after Bolt's 3 s wait (it was, 3 s per forged click)."""
    payload = block_actions([{"type": "button", "action_id": "closure_works", "value": "report:1"}], block_id="b",
                            response_url=f"{bot.fake.url}/response_url/forged")
    response = await bot.post(*interactive(payload))
    await bot.settle()
    assert response.status_code == 200
    assert not [r for r in caplog.records if "longer than Slack's 3 s" in r.getMessage()]
    assert [r.getMessage() for r in caplog.records if r.name == "slack_bolt.AsyncApp" and "ack()" in r.getMessage()] == []


@contextlib.contextmanager
def acked_empty(serve: Serve, fake, url: str, text: str):
    """A one-line report ``text`` sent while ``url``'s write lock is held: acked empty at Bolt's 3 s,
    its write still waiting; the lock held until the block ends."""
    with WriteLock(url), concurrent.futures.ThreadPoolExecutor(1) as pool:
        answer = pool.submit(post, serve.base, *slash_command(text, fake_url=fake.url)).result(timeout=30)
        assert answer is not None and (answer.status_code, answer.text) == (200, ""), answer
        yield


def test_a_report_slower_than_bolt_s_3_s_is_acked_kept_and_its_reference_sent_after(tmp_path):
    """Bolt waits 3 s for a listener's ack, then answers without it while the listener runs on
    (slack_bolt/listener/asyncio_runner.py). A one-line report whose write waited longer (SQLite's
    writer busy on a loaded host: the chaos run on CI) was answered 200 with nothing, its spool copy
    left ``held`` (dropped at a restart), and its reference, acked after, went nowhere. Now: acked,
    ``live`` in the spool, its reference sent to the response URL, by the listener when it gets
    through, or by the replay after a kill -9. (SQLite: on PostgreSQL a write waits at most
    ANSWER_SECONDS, 2.5 s, then answers "try again" itself.)"""
    url = fresh_database(None, tmp_path, "sqlite")
    with FakeSlackServer() as fake:
        serve = Serve(tmp_path, fake.url, url)
        serve.start()
        try:
            with acked_empty(serve, fake, url, "the nightly build cache is empty"):
                pass
            # (The lock goes now: SQLite's busy timeout, 5 s from the write's start, would make it "try again".)
            [first] = wait_for(lambda: points(url), timeout=30, what="the first report stored", serve=serve)
            wait_for(lambda: told(fake, first.id), timeout=30, what="its reference sent to the response URL", serve=serve)

            with acked_empty(serve, fake, url, "the staging database is read-only"):
                serve.kill_all()  # its listener still waits for the write lock: only a live spool copy keeps it
            serve.start()
            stored = wait_for(lambda: len(found := points(url)) == 2 and found, timeout=60, what="the second report stored after the restart",
                              serve=serve)
            wait_for(lambda: told(fake, stored[1].id), timeout=30, what="its reference sent by the replay", serve=serve)
            wait_for(lambda: spool_empty(serve), timeout=60, what="the spool drained", serve=serve)
        finally:
            serve.stop()
    assert [p.text for p in stored] == ["the nightly build cache is empty", "the staging database is read-only"]
    assert len(told(fake, first.id)) == 1 and len(told(fake, stored[1].id)) == 1  # once each
    assert serve.tail().count("no listener takes") == 0, serve.tail()  # not counted as unhandled



def test_a_deploy_s_sigterm_loses_no_report_still_waiting_for_its_write(tmp_path, request):
    """``serve --workers 2`` on PostgreSQL, a one-line report acked empty at Bolt's 3 s while its
    write waits for a lock, then SIGTERM (a deploy). Bolt's runner releases a request's spool copy
    in a ``finally`` that the listener's cancellation at shutdown runs too: the copy went, the
    report was never stored nor told (found attacking real processes). And a worker whose thread
    still waited on the lock never ended. Now: the process ends on its own, the copy stays, and
    after the restart the report is stored once and told once."""
    url = fresh_database(request, tmp_path, "postgresql")
    with FakeSlackServer() as fake:
        serve = Serve(tmp_path, fake.url, url, args=("--workers", "2"))
        serve.start()
        try:
            with acked_empty(serve, fake, url, "the release train is stuck at QA"):
                serve.proc.send_signal(signal.SIGTERM)
                serve.proc.wait(timeout=WAIT_SECONDS)  # ends on its own, the lock still held
                serve.proc = None
            assert points(url) == []
            serve.start()
            [point] = wait_for(lambda: points(url), timeout=60, what="the report stored after the restart", serve=serve)
            wait_for(lambda: told(fake, point.id), timeout=30, what="its reference sent by the replay", serve=serve)
            wait_for(lambda: spool_empty(serve), timeout=60, what="the spool drained", serve=serve)
        finally:
            serve.stop()
    assert point.text == "the release train is stuck at QA" and len(told(fake, point.id)) == 1


class _StalledSleep:
    """``asyncio`` as Bolt's listener runner sees it, its ``sleep`` held until ``go`` is set: the
    runner's look for the ack (every 10 ms) then never comes."""

    def __init__(self):
        self.go = asyncio.Event()

    def __getattr__(self, name):
        return getattr(asyncio, name)

    async def sleep(self, _seconds):
        await self.go.wait()


async def test_a_command_is_answered_at_its_ack_not_at_bolt_s_next_look(bot, monkeypatch):
    """Bolt looks for a listener's ack every 10 ms, the first look before the listener has run: each
    command and click waited at least one such sleep (longer on a busy loop). Answered at the ack,
    the answer comes with Bolt's looks stalled altogether."""
    stalled = _StalledSleep()
    monkeypatch.setattr(asyncio_runner, "asyncio", stalled)
    try:
        response = await asyncio.wait_for(bot.post(*slash_command("help", fake_url=bot.fake.url)), WAIT_SECONDS)
    finally:
        stalled.go.set()  # Bolt's dispatch ends in the background
    assert response.status_code == 200 and "/platform-feedback" in response.text


async def test_over_socket_mode_a_command_is_answered_at_its_ack_and_a_slow_one_at_its_response_url(fake_slack, tmp_path):
    """The same over Socket Mode (``SpoolingSocketModeHandler``): ``help`` acked with its usage, and
    a report whose write waits past Bolt's 3 s acked empty, its reference sent to the response URL."""
    db = Database(f"sqlite:///{tmp_path}/bot.db")
    db.migrate()
    app, deps = build(fake_slack, db, tmp_path / "events.spool")

    def command(text: str) -> dict:
        return dict(parse_qsl(slash_command(text, fake_url=fake_slack.url)[0]))

    async with FakeSocketMode() as socket_slack:
        handler = SpoolingSocketModeHandler(app, "xapp-1-A0APP0001-1-fake", gate=deps.events,
                                            web_client=AsyncWebClient(base_url=socket_slack.url + "/api/"))
        await handler.connect_async()
        try:
            await asyncio.wait_for(socket_slack.connected.wait(), WAIT_SECONDS)
            usage = socket_slack.push(command("help"), kind="slash_commands")
            await socket_slack.wait_for_acks(1)
            assert "/platform-feedback" in json.dumps(socket_slack.answers[usage])
            with WriteLock(db.url):
                slow = socket_slack.push(command("the runners are slow"), kind="slash_commands")
                await socket_slack.wait_for_acks(2)  # at Bolt's 3 s, the write still waiting for the lock
            assert not socket_slack.answers[slow]
            point = await until(lambda: points(db.url), what="the report stored")
            await until(lambda: told(fake_slack, point[0].id), what="its reference sent to the response URL")
        finally:
            await handler.close_async()
            await deps.events.stop()
            db.dispose()


async def test_a_report_whose_write_outlasts_the_database_s_answer_time_is_filed_and_told_once(bot, monkeypatch):
    """A write held up past the database's answer time (2.5 s on PostgreSQL) used to be answered "try
    again" and then commit anyway: untrue, and the resend filed it twice. Now it is acked empty at
    Bolt's 3 s and "Filed as FB-n" goes to the response URL once the write is through."""
    if bot.db.answer_seconds is not None:  # the product's, not the tests' loaded-machine allowance
        monkeypatch.setattr(bot.db, "answer_seconds", ANSWER_SECONDS)
    lock = WriteLock(bot.db.url).__enter__()
    try:
        waiting = asyncio.ensure_future(bot.post(*slash_command("the artifact store is read-only", fake_url=bot.fake.url)))
        response = await asyncio.wait_for(waiting, WAIT_SECONDS)  # at Bolt's 3 s, the write still waiting
    finally:
        lock.__exit__(None, None, None)
    assert (response.status_code, response.text) == (200, "")
    [point] = await until(lambda: points(bot.db.url), what="the report stored")
    said = await until(lambda: told(bot.fake, point.id), what="its reference sent to the response URL")
    await bot.settle()
    assert len(said) == 1 and len(points(bot.db.url)) == 1
    assert not [c for c in bot.fake.calls_to("response_url") if "try again" in json.dumps(c.body)]


HOST = "U0HOST0001"


@pytest.fixture
def policy() -> Policy:
    return Policy(hosts=Hosts(users=[HOST]))


def lock_waited(url: str) -> float:
    """The longest a statement of this database has been waiting for a lock, in seconds (PostgreSQL)."""
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        row = conn.execute("SELECT max(extract(epoch FROM now() - query_start)) FROM pg_stat_activity "
                           "WHERE wait_event_type = 'Lock' AND datname = current_database()").fetchone()
    return float(row[0] or 0.0)


async def test_a_change_acked_first_waits_for_a_slow_write_rather_than_saying_try_again(bot, monkeypatch):
    """A host's ``resolve`` is acked first, then written. A write held up past the database's answer
    time (2.5 s) was given up on, the host told "cannot reach its database, try again", and it
    committed anyway. After the ack nobody waits: the write is waited for (``ANSWERED_SECONDS``)."""
    if bot.db.answer_seconds is None:
        pytest.skip("SQLite has no answer deadline: its busy timeout bounds the wait")
    filed = await bot.post(*slash_command("the preview environments time out", fake_url=bot.fake.url))
    assert "FB-1" in filed.text
    monkeypatch.setattr(bot.db, "answer_seconds", ANSWER_SECONDS)  # the product's, not the tests' allowance
    with WriteLock(bot.db.url):
        answer = await bot.post(*slash_command("resolve FB-1 warmed by a nightly job", fake_url=bot.fake.url, user=HOST))
        assert answer.status_code == 200  # acked before the write
        await until(lambda: lock_waited(bot.db.url) > ANSWER_SECONDS + 0.5, what="the write waiting past the answer time")
    await bot.settle()
    [point] = points(bot.db.url)
    assert point.status == "resolved" and point.resolution_note == "warmed by a nightly job"
    assert not [c for c in bot.fake.calls_to("response_url") if "cannot reach" in json.dumps(c.body)]


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
async def test_a_form_refused_after_slack_closed_it_is_told_by_dm_with_what_was_typed(bot):
    """A report form sent while another process holds SQLite's write lock: Bolt answers at its 3 s,
    and Slack closes the form; the write gives up at SQLite's 5 s busy timeout and the listener
    refuses the form ("cannot reach its database"), an answer with no way back (a form has no
    response URL). It was logged only: the person saw the form close and took it as filed, their
    words gone. Now they are told by DM, what they typed quoted to send again, inert."""
    await bot.post(*slash_command("", fake_url=bot.fake.url))
    await bot.settle()
    view = bot.fake.calls_to("views.open")[-1].body["view"]
    typed = "the <!channel> runner pool is empty\nsince monday <https://evil.example|https://ci.example>"
    with WriteLock(bot.db.url):
        response = await asyncio.wait_for(bot.post(*interactive(view_submission(view, modal_values(typed)))), WAIT_SECONDS)
        assert (response.status_code, response.text) == (200, "")  # Slack closes the form
        [dm] = await until(lambda: [c for c in bot.fake.calls_to("chat.postMessage") if c.body.get("channel") == USER],
                           what="the person told by DM")
    await bot.settle()
    text = dm.body["text"]
    assert UNREACHABLE in text and "closed before it was saved" in text, text
    assert "> the @\u2060channel runner pool is empty\n> since monday https://ci.example (https://evil.example)" in text, text
    assert "<!channel>" not in text and "<https://evil" not in text
    assert points(bot.db.url) == []  # nothing filed: the DM is true
