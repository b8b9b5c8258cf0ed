"""Anonymous surveys stay anonymous against anyone watching (issue #14): the /metrics scraper,
a host reading results, someone reading the database rows, SQLite's files (with the -wal) or
PostgreSQL's (heap and WAL). One test per channel; each failed before answers were sealed."""

import json
import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.runtime.metrics import listener_name
from storage.models import OutboxMessage
from storage.surveys import SurveyAnswer, SurveyRecipient, SurveyResponse, SurveyRun, SurveySealed
from tests.surveys.test_surveys import (  # noqa: F401 (policy, directory: fixtures)
    ENGINEERS,
    EVERYONE,
    GROUP_ONLY,
    answer,
    close,
    command,
    comment,
    directory,
    policy,
    rows,
    runner_of,
    started,
)


def metrics(bot) -> str:
    return bot.deps.metrics.render().decode()


def request_series(scrape: str) -> list[str]:
    return [line for line in scrape.splitlines() if line.startswith(("pf_slack_requests", "pf_slack_ack_seconds"))]


# ------------------------------------------------------------------ /metrics


def test_labels_name_known_ids_only_never_a_value_or_anything_else_from_a_payload():
    def action(action_id: str) -> dict:
        return {"type": "block_actions", "actions": [{"action_id": action_id}]}

    for value in ("0", "3", "10"):
        assert listener_name(action(f"survey_answer:{value}")) == "action:survey_answer"
    assert listener_name(action("csat_followup:5")) == "action:csat_followup"  # every action with a value suffix
    assert listener_name(action("triage_resolve")) == "action:triage_resolve"
    assert listener_name(action("made_up_by_someone:U0ENG00001")) == "action:other"
    assert listener_name({"type": "view_submission", "view": {"callback_id": "anything<>"}}) == "view:other"
    assert listener_name({"type": "event_callback", "event": {"type": "U0ENG00001"}}) == "event:other"
    assert listener_name({"command": "/some-other-command"}) == "command:other"
    assert listener_name({"type": "no_such_type"}) == "other"


async def test_answering_leaves_metrics_unchanged(bot):
    await started(bot)
    before = request_series(metrics(bot))
    for i, user in enumerate(ENGINEERS[:4]):
        await answer(bot, user, 10 - i, ci=1 + i)
    await comment(bot, ENGINEERS[0], "Builds are slow", fix="caching")
    after = metrics(bot)
    assert "survey_answer" not in after and "survey_comment" not in after
    assert request_series(after) == before  # a scrape cannot tell that (or when) anyone answered


# ------------------------------------------------------------------ a host reading results


async def test_results_of_an_open_run_do_not_change_as_people_answer(bot):
    run = await started(bot)
    looks = []
    for i, user in enumerate(ENGINEERS[:5]):
        looks.append(await command(bot, "survey results pulse"))
        await answer(bot, user, 10 - i)
    looks.append(await command(bot, "survey results pulse"))
    assert len(set(looks)) == 1 and "sealed until it closes" in looks[0]
    await close(bot, run)
    assert "*5* of 10 people answered" in await command(bot, "survey results pulse")


# ------------------------------------------------------------------ database rows after close


async def answered_and_reminded(bot) -> tuple[SurveyRun, list[str], list[str]]:
    """A run where four answered and the rest did not, after its last-call reminders went (to
    the rest) and were dropped (for the four)."""
    run = await started(bot)
    answerers = ENGINEERS[:4]
    for user in answerers:
        await answer(bot, user, 8)
    await comment(bot, ENGINEERS[0], "Builds are slow", fix="caching")
    await runner_of(bot).tick(now=run.closes_at - timedelta(hours=13))  # the last call
    await bot.drain()
    reminded = {c.body["channel"] for c in bot.fake.calls_to("chat.postMessage") if c.body["text"].startswith("Reminder")}
    others = sorted(r.user_id for r in rows(bot.db, SurveyRecipient, SurveyRecipient.run_id == run.id) if r.user_id not in answerers)
    assert reminded == set(others) and others
    return run, answerers, others


def trace(row: SurveyRecipient) -> tuple:
    return (row.delivered, row.reminders)


async def test_while_open_no_row_tells_who_answered(bot):
    """Answering writes no row that names the person; reminders are queued for everyone who
    got the DM and leave the same rows behind whether they went or were dropped."""
    run, answerers, others = await answered_and_reminded(bot)
    recipients = rows(bot.db, SurveyRecipient, SurveyRecipient.run_id == run.id)
    assert len({trace(r) for r in recipients}) == 1 and recipients[0].delivered  # answerers and the others look the same
    messages = rows(bot.db, OutboxMessage)
    assert not [m.dedupe_key for m in messages if m.dedupe_key.startswith(f"survey:{run.id}:reminder")]
    for message in messages:
        assert message.last_error in (None, "opted out"), message.dedupe_key  # never "answered"
    # What holds the answers names no one: a pseudonym and ciphertext.
    people = EVERYONE | set(GROUP_ONLY)
    for row in rows(bot.db, SurveySealed):
        assert not any(u in json.dumps(row.model_dump(), default=str) for u in people)
    assert len(rows(bot.db, SurveySealed)) == len(answerers)


async def test_after_close_no_row_tells_who_answered(bot):
    run, answerers, others = await answered_and_reminded(bot)
    await close(bot, run)
    recipients = rows(bot.db, SurveyRecipient, SurveyRecipient.run_id == run.id)
    assert len({trace(r) for r in recipients}) == 1
    assert rows(bot.db, SurveySealed) == []
    keys = [m.dedupe_key for m in rows(bot.db, OutboxMessage)]
    assert not [k for k in keys if k.startswith(f"survey:{run.id}:reminder")]
    people = EVERYONE | set(GROUP_ONLY)
    for message in rows(bot.db, OutboxMessage):
        if message.dedupe_key.startswith(f"survey:{run.id}:dm:"):
            assert message.last_error in (None, "the survey closed", "opted out")  # never "answered"
    for row in [*rows(bot.db, SurveyResponse), *rows(bot.db, SurveyAnswer)]:
        assert not any(u in json.dumps(row.model_dump(), default=str) for u in people)


# ------------------------------------------------------------------ row order


def stored_order(bot, run_id: int) -> list[int]:
    """The NPS scores in the order the database keeps the rows (rowid / ctid)."""
    position = "rowid" if bot.db.engine.dialect.name == "sqlite" else "ctid"
    with bot.db.engine.connect() as conn:
        return [score for (score,) in conn.execute(text(
            f"SELECT a.score FROM survey_response r JOIN survey_answer a ON a.response_id = r.id "
            f"WHERE r.run_id = :run AND a.question = 'nps' ORDER BY r.{position}"), {"run": run_id})]


def answer_rows_order(bot, run_id: int) -> list[int]:
    position = "rowid" if bot.db.engine.dialect.name == "sqlite" else "ctid"
    with bot.db.engine.connect() as conn:
        return [score for (score,) in conn.execute(text(
            f"SELECT a.score FROM survey_answer a JOIN survey_response r ON a.response_id = r.id "
            f"WHERE r.run_id = :run AND a.question = 'nps' ORDER BY a.{position}"), {"run": run_id})]


async def test_row_order_is_not_answer_order(bot, fake_slack):
    people = [f"U0ORD{i:05d}" for i in range(11)]
    for user in people:
        fake_slack.users[user] = {"tz": "UTC"}
    fake_slack.channel_members["C0ENG00001"] = fake_slack.channel_members["C0ENG00001"] + people
    run = await started(bot)
    for score, user in enumerate(people):  # answered in the order 0, 1, ..., 10
        await answer(bot, user, score)
    await close(bot, run)
    order, answer_order = stored_order(bot, run.id), answer_rows_order(bot, run.id)
    assert sorted(order) == list(range(11)) == sorted(answer_order)
    assert order != list(range(11)) and answer_order != list(range(11))  # 1 in 11! to fail by chance


# ------------------------------------------------------------------ SQLite's files


async def test_sqlite_files_keep_nothing_that_opens_an_answer_after_close(bot):
    if bot.db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's files")
    run = await started(bot)
    for i, user in enumerate(ENGINEERS[:5]):
        await answer(bot, user, 10 - i, ci=1 + i % 5)
    await comment(bot, ENGINEERS[1], "Nobody reviews my pull requests", fix="reviews")
    nonce = rows(bot.db, SurveyRun, SurveyRun.id == run.id)[0].secret
    sealed = [r.sealed for r in rows(bot.db, SurveySealed)] + [r.slot for r in rows(bot.db, SurveySealed)]
    await close(bot, run)
    path = Path(bot.db.engine.url.database)
    files = {p.name: p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists()}
    assert files, path
    for name, data in files.items():
        assert nonce.encode() not in data, name  # the run's nonce: with the bot's secret it would open the blobs
        for blob in sealed:
            assert blob[:40].encode() not in data, name
    assert nonce and len(sealed) == 10
    # ...and the answers themselves are there, without anyone's name next to them.
    assert b"Nobody reviews my pull requests" in b"".join(files.values())


# ------------------------------------------------------------------ PostgreSQL's files


def pg_bytes(bot, since) -> bytes:
    """The survey tables' heap files and the WAL segments written since ``since``, read as the
    server keeps them (dead tuples and all)."""
    with bot.db.engine.connect() as conn:
        conn.execute(text("CHECKPOINT"))
        files = [conn.execute(text("SELECT pg_relation_filepath(:t)"), {"t": t}).scalar()
                 for t in ("survey_recipient", "survey_response", "survey_answer", "survey_run", "outbox_message")]
        wal = [f"pg_wal/{name}" for (name,) in conn.execute(text(
            "SELECT name FROM pg_ls_waldir() WHERE modification >= :since ORDER BY name"), {"since": since})]
        chunks = [conn.execute(text("SELECT pg_read_binary_file(:p)"), {"p": p}).scalar() for p in files + wal]
    return b"".join(bytes(c) for c in chunks if c)


async def test_postgresql_never_holds_an_answer_next_to_a_person(bot):
    if bot.db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's files")
    with bot.db.engine.connect() as conn:
        since = conn.execute(text("SELECT now() - interval '1 second'")).scalar()
    run = await started(bot)
    # Unique to this run: the cluster's WAL is shared with every database on it and recycled segments
    # keep older runs' bytes, where the same words were written in the clear after their close.
    secret_words = f"Nobody reviews my pull requests, ever {uuid.uuid4().hex}"
    await answer(bot, ENGINEERS[1], 3)
    await comment(bot, ENGINEERS[1], secret_words, fix="reviews")
    for user in ENGINEERS[2:5]:
        await answer(bot, user, 9)
    # While the run is open the answers exist only sealed: not in any table file, dead tuple or WAL record.
    assert secret_words.encode() not in pg_bytes(bot, since)
    await close(bot, run)
    assert re.search(r"Nobody reviews", json.dumps([r.comment for r in rows(bot.db, SurveyResponse)]))


# ------------------------------------------------------------------ /metrics and logs during a run


async def test_survey_messages_leave_metrics_and_logs_unchanged(bot, caplog):
    """DMs and reminders (sent, or dropped for those who answered) are not counted on /metrics
    and no log line names a recipient or a survey message's id."""
    caplog.set_level("INFO")  # what `serve` logs (bot.runtime.logs)
    before = [line for line in metrics(bot).splitlines() if line.startswith("pf_outbox_sent")]
    run, answerers, others = await answered_and_reminded(bot)
    after = [line for line in metrics(bot).splitlines() if line.startswith("pf_outbox_sent")]
    assert after == before
    people = EVERYONE | set(GROUP_ONLY)
    for record in caplog.records:
        assert not any(u in record.getMessage() for u in people), record.getMessage()


# ------------------------------------------------------------------ PostgreSQL's pages after close


def heap_tuples(bot, table: str) -> list[bytes]:
    """Every tuple of ``table`` still in its pages, live or dead (pageinspect)."""
    with bot.db.engine.begin() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS pageinspect"))
        pages = conn.execute(text("SELECT pg_relation_size(:t) / current_setting('block_size')::int"), {"t": table}).scalar()
        return [bytes(data) for n in range(pages) for (data,) in conn.execute(
            text("SELECT t_data FROM heap_page_items(get_raw_page(:t, :n)) WHERE t_data IS NOT NULL"), {"t": table, "n": n})]


async def test_postgresql_pages_after_close_do_not_tell_who_answered(bot):
    """After close, every version of every row (dead tuples included) is the same for those who
    answered and those who did not, and the nonce that would open the pseudonyms is gone."""
    if bot.db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's pages")
    run, answerers, others = await answered_and_reminded(bot)
    nonce = rows(bot.db, SurveyRun, SurveyRun.id == run.id)[0].secret.encode()
    slots = [r.slot.encode() for r in rows(bot.db, SurveySealed)]
    await close(bot, run)
    # A recipient row has as many versions for one as for another (its page is small: never pruned).
    tuples = heap_tuples(bot, "survey_recipient")
    versions = {user: sum(user.encode() in t for t in tuples) for user in answerers + others}
    assert len(set(versions.values())) == 1, versions
    # (The outbox's pages are pruned as they fill, so its dead tuples are compared row by row while
    # the run is open instead: test_while_open_no_row_tells_who_answered.)
    for table in ("survey_run", "survey_sealed", "survey_recipient", "outbox_message"):
        for data in heap_tuples(bot, table):
            assert nonce not in data and not any(s in data for s in slots), table


def test_a_segment_label_never_pings_a_group_or_disguises_a_link():
    from bot.surveys.blocks import segment_label

    for segment in ("usergroup:S0DEVS0001", "usergroup:<!channel>", "channel:C0ENG00001", "channel:<!here|x>", "other:<@U1>"):
        label = segment_label(segment)
        assert "<!" not in label and "<@" not in label and "|" not in label, label
    assert segment_label("channel:C0ENG00001") == "<#C0ENG00001>"


async def test_a_transaction_older_than_the_close_does_not_keep_what_it_erased(bot):
    """A reader that began before the close (a report, a backup's dump, autovacuum's ANALYZE) still
    sees the run's old version with its nonce, so a rewrite during it copies that version into the
    new files. The close rewrites again until nothing is kept: once the reader ends, it is gone."""
    if bot.db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's pages")
    import logging
    import threading

    run, _, _ = await answered_and_reminded(bot)
    nonce = rows(bot.db, SurveyRun, SurveyRun.id == run.id)[0].secret.encode()
    holding, rewrite_kept, closed = threading.Event(), threading.Event(), threading.Event()

    class KeptSeen(logging.Handler):
        def emit(self, record):
            if "kept for a transaction older than the close" in record.getMessage():
                rewrite_kept.set()

    def older_reader():
        with bot.db.engine.connect() as conn:
            conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            conn.execute(text("SELECT count(*) FROM survey_run")).scalar()  # its snapshot, from before the close
            holding.set()
            # Ends once the close's first rewrite had to keep something (or, on code that does not
            # look, once the close is over), as a report would end while the close goes on.
            while not (rewrite_kept.is_set() or closed.is_set()):
                rewrite_kept.wait(0.05)
            conn.rollback()

    handler, logger = KeptSeen(level=logging.DEBUG), logging.getLogger("storage.survey_answers")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)  # setLevel, not .level: the logger caches what it had let through
    reader = threading.Thread(target=older_reader)
    reader.start()
    try:
        assert holding.wait(60), "the older reader never began"
        await close(bot, run)
    finally:
        closed.set()
        reader.join(60)
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert rewrite_kept.is_set(), "the close's rewrite did not notice what it kept for the older reader"
    for table in ("survey_run", "survey_sealed"):
        assert not any(nonce in data for data in heap_tuples(bot, table)), f"the nonce is still in {table}'s pages"
