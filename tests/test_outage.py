"""A real PostgreSQL outage, through a TCP proxy the tests take down: events are refused while the
database cannot store them (Slack retries them) and stored when they come again, nothing gets a
500, nothing waits longer than Slack's 3 s, and every "cannot reach" error is one
DatabaseUnavailable. SQLite is a local file: it has no outage of this kind."""

import asyncio
import os
import time

import httpx
import psycopg
import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, ProgrammingError
from sqlmodel import select

from bot.runtime.app import create_app, create_web_app
from bot.runtime.config import HelpChannel, Hosts, Policy, Triage
from storage.database import Database, DatabaseUnavailable, is_unavailable
from storage.models import FrictionPoint
from tests.conftest import TABLES, Bot, make_settings
from tests.fake_slack import TOKEN
from tests.slack_requests import event_callback, interactive, modal_values, reaction_added, slash_command, view_submission
from tests.tcp_proxy import TcpProxy
from tests.test_help_channel import message

HELP, OTHER = "C0HELP0001", "C0RANDOM01"
OUTAGE_SECONDS = float(os.environ.get("OUTAGE_SECONDS", "30"))  # the 30 s; Slack's first retry comes within a minute
SLACK_ACK_SECONDS = 3  # https://api.slack.com/apis/events-api#responding


@pytest.fixture
def proxy():
    with TcpProxy() as p:
        yield p


@pytest.fixture
def pg_db(pg_url, proxy):
    direct = Database(pg_url)
    with direct.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    direct.dispose()
    database = Database(proxy.url(pg_url))
    yield database
    database.dispose()


@pytest.fixture
async def outage_bot(fake_slack, pg_db):
    policy = Policy(help_channel=HelpChannel(channel=HELP, join_minutes=0), hosts=Hosts(users=["U0HOST0001"]),
                    triage=Triage(channel="C0TRIAGE01"))
    settings = make_settings(fake_slack, pg_db)
    app, deps = create_app(settings, policy, pg_db, client=AsyncWebClient(token=TOKEN, base_url=settings.slack_api_url))
    web = create_web_app(app, deps, run_background=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://testserver", timeout=30) as http:
        b = Bot(deps=deps, http=http, fake=fake_slack, db=pg_db)
        yield b
        await b.settle()


def stored(db: Database) -> list[FrictionPoint]:
    with db.session() as s:
        return list(s.exec(select(FrictionPoint).order_by(FrictionPoint.id)).all())


async def timed(coro) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    resp = await coro
    return resp, time.monotonic() - started


def test_every_cannot_reach_error_is_unavailable_and_a_bad_statement_is_not():
    closed = psycopg.ProgrammingError("the connection is closed")
    assert is_unavailable(ProgrammingError("SELECT 1", {}, closed))  # what the pool's pre-ping raised in the issue
    assert is_unavailable(DBAPIError("SELECT 1", {}, Exception("server closed the connection"), connection_invalidated=True))
    assert not is_unavailable(ProgrammingError("SELEC 1", {}, psycopg.ProgrammingError('syntax error at or near "SELEC"')))


async def test_down_and_back_up_is_database_unavailable_then_works(pg_db, proxy):
    pg_db.transact(lambda session: session.exec(text("SELECT 1")))  # a pooled connection, soon reset
    proxy.close()
    for call in (pg_db.run(lambda session: session.exec(text("SELECT 1"))), pg_db.check()):
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable):
            await call
        assert time.monotonic() - started < SLACK_ACK_SECONDS
    proxy.open()
    assert await pg_db.run(lambda session: session.exec(text("SELECT 1")).one()[0]) == 1


async def test_a_hanging_database_gets_clear_answers_within_three_seconds(outage_bot, proxy):
    bot = outage_bot
    await bot.post(*slash_command("", fake_url=bot.fake.url))
    await bot.settle()
    view = bot.fake.calls_to("views.open")[-1].body["view"]
    assert (await bot.http.get("/healthz")).status_code == 200  # the pool holds a live connection now
    proxy.hang()

    resp, took = await timed(bot.http.get("/healthz"))
    assert resp.status_code == 503 and resp.json() == {"ok": False, "database": "unavailable"} and took < SLACK_ACK_SECONDS
    bot.fake.add_message(OTHER, "1700000100.000001", "the wiki is down")
    resp, took = await timed(bot.post(*event_callback(reaction_added(channel=OTHER, ts="1700000100.000001"))))
    assert resp.status_code == 503 and took < SLACK_ACK_SECONDS
    resp, took = await timed(bot.post(*interactive(view_submission(view, modal_values("runners are slow")))))
    assert resp.status_code == 200 and took < SLACK_ACK_SECONDS
    assert "database did not answer" in resp.json()["errors"]["text"]  # the modal stays open with the error

    proxy.open()
    resp = await bot.post(*interactive(view_submission(view, modal_values("runners are slow"))))
    assert resp.status_code == 200
    await bot.drain()
    assert [p.text for p in stored(bot.db)] == ["runners are slow"]


async def test_a_30_second_outage_loses_no_reaction_or_question_and_gives_no_500(outage_bot, proxy):
    bot = outage_bot
    await bot.post(*slash_command("", fake_url=bot.fake.url))
    await bot.settle()
    view = bot.fake.calls_to("views.open")[-1].body["view"]
    n = 24
    deliveries = []
    for i in range(n):
        ts = f"1700001{i:03d}.000100"
        bot.fake.add_message(OTHER, ts, f"reacted report {i}", user=f"U0AUTH{i:04d}")
        deliveries.append((reaction_added(channel=OTHER, ts=ts, user=f"U0REACT{i:03d}"), f"Ev0REACT{i:04d}"))
        deliveries.append((message(f"help question {i}", ts=f"1700002{i:03d}.000100", user=f"U0ASK{i:05d}"), f"Ev0ASK{i:06d}"))

    proxy.close()
    down_at = time.monotonic()
    statuses = []
    for event, event_id in deliveries:
        resp, took = await timed(bot.post(*event_callback(event, event_id=event_id)))
        statuses.append(resp.status_code)
        assert took < SLACK_ACK_SECONDS
    assert set(statuses) == {503}  # refused, so Slack delivers them again; none acked and dropped
    resp = await bot.post(*interactive(view_submission(view, modal_values("submitted during the outage"))))
    assert resp.status_code == 200 and "errors" in resp.json()
    await bot.settle()
    await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
    proxy.open()

    # Slack's retries: the same event_id with X-Slack-Retry-Num, twice here (the second one a duplicate).
    for retry in (1, 2):
        for event, event_id in deliveries:
            resp = await bot.post(*event_callback(event, event_id=event_id, retry_num=retry))
            assert resp.status_code == 200
        await bot.settle()  # the listeners' work; the outbox's paced replies are not what this test is about
    texts = sorted(p.text for p in stored(bot.db))
    assert texts == sorted([f"reacted report {i}" for i in range(n)] + [f"help question {i}" for i in range(n)])
