"""Issue #26 item 6: the triage card's duplicate check (rapidfuzz over up to 500 open reports)
runs off the serving loop and outside write transactions, and its hints are right on short texts
(issue #27's kind: one shared word is not similarity). Through the real app: a report filed among
500 open 3,000-character reports has its card drawn by the outbox sender, and while the scoring
runs no write transaction of the bot is open (SQLite: another writer gets the lock at once;
PostgreSQL: no connection of ours is idle in a transaction) and the event loop's thread is free.
How long acks wait meanwhile is a timing figure: bench/duplicate_ack.py."""

import random
import sqlite3
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlmodel import select

from bot.insight import service as insight
from bot.policy import Hosts, Insight, Policy, Triage
from storage.models import FrictionPoint, Source
from tests.insight.test_insight import add_point
from tests.slack_requests import slash_command

TRIAGE = "C0TRIAGE01"
UTC = timezone.utc


def long_report(rng: random.Random, words: list[str]) -> str:
    return " ".join(rng.choice(words) for _ in range(600))[:3000]


def seed_open_reports(db, n: int = 500) -> None:
    rng = random.Random(26)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9))) for _ in range(3000)]
    start = datetime.now(UTC) - timedelta(days=20)
    with db.session() as s, s.begin():
        s.add_all([FrictionPoint(team_id="T0TEAM001", filed_by="U0SEED0001", text=long_report(rng, words), source=Source.command,
                                 intake_key=f"seed:{i}", created_at=start + timedelta(minutes=i)) for i in range(n)])


@pytest.fixture
def policy() -> Policy:
    return Policy(hosts=Hosts(users=["U0HOST0001"]), triage=Triage(channel=TRIAGE), insight=Insight(duplicate_threshold=70))


async def test_the_duplicate_check_holds_no_write_transaction_and_not_the_loop(bot, monkeypatch):
    seed_open_reports(bot.db)
    loop_thread = threading.get_ident()
    seen = []
    scored = insight.similarity_text.__wrapped__

    def probe(words: str) -> str:
        if not seen:  # the first word list the scoring asks for: look at what is held right now
            seen.append((threading.get_ident() != loop_thread, not_writing(bot.db)))
        return scored(words)

    monkeypatch.setattr(insight, "similarity_text", probe)
    await bot.post(*slash_command("the nightly build of the monorepo fails on arm runners", fake_url=bot.fake.url))
    await bot.drain()
    assert seen, "the card was drawn without a duplicate check"
    off_loop, free = seen[0]
    assert off_loop, "the duplicate check ran on the event loop's thread"
    assert free, "the duplicate check ran inside a write transaction"
    with bot.db.session() as s:
        new = s.exec(select(FrictionPoint).order_by(FrictionPoint.id.desc())).first()
        assert new.suggested_similarity is not None  # computed and kept (below the threshold: random words)
    assert [c for c in bot.fake.calls_to("chat.postMessage") if c.body.get("channel") == TRIAGE]  # the card went out


def not_writing(db) -> bool:
    """No write transaction of the bot is open: on SQLite another connection takes the write lock
    at once; on PostgreSQL no connection to the database but this one is idle in a transaction."""
    if db.url.startswith("sqlite"):
        conn = sqlite3.connect(db.url.removeprefix("sqlite:///"), timeout=0, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            conn.close()
    with db.engine.connect() as conn:
        busy = conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                 "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'")).scalar()
    return busy == 0


def test_one_shared_word_is_not_similarity(db):
    """Short reports: token_set_ratio scores any subset 100, so "flaky" was a 100% duplicate of
    anything flaky. Two distinct words in common (not stop words), or the very same words, are needed."""
    at = datetime(2026, 6, 1, tzinfo=UTC)
    with db.session() as s, s.begin():
        flaky_tests = add_point(s, created=at, text="flaky tests on main")
        slow_vpn = add_point(s, created=at + timedelta(minutes=1), text="slow vpn")
        ci_slow = add_point(s, created=at + timedelta(minutes=2), text="the ci is slow")
        flaky = add_point(s, created=at + timedelta(hours=1), text="flaky")
        slow_build = add_point(s, created=at + timedelta(hours=2), text="slow build")
        vpn = add_point(s, created=at + timedelta(hours=3), text="VPN!")
        ci_slow_again = add_point(s, created=at + timedelta(hours=4), text="CI slow again")
        flaky_again = add_point(s, created=at + timedelta(hours=5), text="Flaky.")
    with db.session() as s:
        def suggested(point):
            found = insight.possible_duplicate(session=s, point=s.get(FrictionPoint, point.id), threshold=70)
            return found and found.point_id

        assert suggested(flaky) is None  # one word shared with "flaky tests on main"
        assert suggested(slow_build) is None  # "slow" alone
        assert suggested(vpn) is None  # "vpn" alone
        assert suggested(ci_slow_again) == ci_slow.id  # "ci" and "slow"
        assert suggested(flaky_again) == flaky.id  # the very same word
        assert flaky_tests and slow_vpn
