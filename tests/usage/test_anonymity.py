"""The moment-of-use question is anonymous under the pulse surveys' rules (docs/surveys.md, "Survey
anonymity"; tests/test_surveys_anonymity.py): answering (through Slack's signed requests) changes no
/metrics series and writes no row naming the person, so the rows of people who answered and of people
who did not look the same; what holds the answers while the window is open is a pseudonym and
ciphertext; nothing is shown of an open window; at close the answers are kept without people or
times, in an order that is not the answer order, and the sealed answers and the key's nonce are gone."""

import json
from datetime import timedelta

from sqlalchemy import inspect, text
from sqlmodel import select

from bot.usage import adoption, csat
from storage import usage as store
from storage.models import OutboxMessage, UsageAnswer, UsageAsk, UsageEvent, UsageSealed, UsageWindow, utcnow
from tests.slack_requests import block_actions, element_action, interactive

PEOPLE = [f"U0ANON{i:02d}" for i in range(12)]


def ask_everyone(bot) -> dict[str, int]:
    """A question for each of PEOPLE (one deploy each, all in one window, inside working hours)."""
    now = utcnow().replace(hour=12, minute=0, second=0, microsecond=0)

    def ask_all(*, session) -> dict[str, int]:
        asks = {}
        for i, user in enumerate(PEOPLE):
            new = store.store_event(session=session, key=f"anon-{i}", capability="deploy", user_id=user, email=None, at=now,
                                    outcome="ok", duration_ms=None, subject=None)
            asked = csat.ask(session=session, event=session.get(UsageEvent, new), user_id=user, policy=bot.deps.policy.usage,
                             tz="UTC", now=now)
            asks[user] = asked.id
        return asks

    return bot.db.transact(ask_all)


async def press(bot, user: str, ask_id: int, score: int) -> None:
    button = {"type": "button", "action_id": f"usage_csat_score:{score}", "text": {"type": "plain_text", "text": str(score)},
              "value": f"{ask_id}|{score}"}
    body, headers = interactive(block_actions([element_action(button)], block_id="usage_csat_scores", user=user,
                                              response_url=f"{bot.fake.url}/response_url/{user}", channel="D" + user[1:]))
    assert (await bot.post(body, headers)).status_code == 200
    await bot.settle()


def request_series(bot) -> list[str]:
    scrape = bot.deps.metrics.render().decode()
    return [line for line in scrape.splitlines() if line.startswith(("pf_slack_requests", "pf_slack_ack_seconds"))]


def traces(bot, user: str) -> dict[str, int]:
    """How many rows of each table name ``user`` (its id anywhere in the row)."""
    found = {}
    with bot.db.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            if table == "alembic_version":
                continue
            rows = conn.execute(text(f'SELECT * FROM "{table}"')).all()
            found[table] = sum(1 for r in rows if user in json.dumps([str(v) for v in r]))
    return found


async def test_answering_leaves_no_trace_of_who_answered(bot_with_usage):
    bot, keys = bot_with_usage
    asks = ask_everyone(bot)
    answerers = PEOPLE[:7]  # the other five were asked and did not answer
    before = request_series(bot)
    for score, user in zip([1, 2, 3, 4, 5, 5, 4], answerers, strict=True):  # in this order: 1, 2, 3, ...
        await press(bot, user, asks[user], score)
    assert len(bot.fake.calls_to("response_url")) == 7  # each answer was taken (the DM redrawn)
    after = request_series(bot)
    assert after == before  # /metrics cannot tell that, or when, anyone answered
    # Rows naming an answerer and rows naming someone who did not answer: the same, table by table.
    assert {traces(bot, u)["usage_ask"] for u in PEOPLE} == {1}
    shapes = {json.dumps(traces(bot, u), sort_keys=True) for u in PEOPLE}
    assert len(shapes) == 1, shapes
    with bot.db.session() as s:
        sealed = s.scalars(select(UsageSealed)).all()
        assert len(sealed) == 7 and s.scalars(select(UsageAnswer)).all() == []
        for row in sealed:
            assert not any(u in json.dumps(row.model_dump(), default=str) for u in PEOPLE)
            assert '"s"' not in row.sealed and len(row.sealed) == len(sealed[0].sealed)  # ciphertext, padded alike
        # Nothing of the open window is shown: no score, not even a count.
        measured = adoption.measure(session=s, policy=bot.deps.policy, now=utcnow(), weeks=2)
    deploy = next(c for c in measured.capabilities if c.name == "deploy")
    assert deploy.csat.answers == 0 and deploy.csat.scored == ()

    # Close: answers without people or times, not in answer order; the sealed rows and nonce gone.
    later = utcnow() + timedelta(days=30)
    assert bot.db.transact(csat.close_due, keys=keys, policy=bot.deps.policy.usage, now=later)
    csat.wipe(bot.db.engine)
    with bot.db.session() as s:
        window = s.scalars(select(UsageWindow)).one()
        assert (window.status, window.secret, window.answers) == ("closed", None, 7)
        assert s.scalars(select(UsageSealed)).all() == []
        kept = s.scalars(select(UsageAnswer)).all()
        assert sorted(a.score for a in kept) == [1, 2, 3, 4, 4, 5, 5]
        for row in kept:
            assert not any(u in json.dumps(row.model_dump(), default=str) for u in PEOPLE)
        assert len(s.scalars(select(UsageAsk)).all()) == len(PEOPLE)  # asked: everyone alike
        assert not [m for m in s.scalars(select(OutboxMessage)).all() if "answered" in (m.last_error or "")]
    assert {c["name"] for c in inspect(bot.db.engine).get_columns("usage_answer")} == {"id", "window_id", "score", "comment"}
    position = "rowid" if bot.db.engine.dialect.name == "sqlite" else "ctid"
    with bot.db.engine.connect() as conn:
        stored = tuple(conn.execute(text(f"SELECT score FROM usage_answer ORDER BY {position}")).scalars())
    assert stored != (1, 2, 3, 4, 5, 5, 4)  # written in random order (1 in 1,260 to fail by chance: 7! / (2! 2!))


async def test_a_window_under_the_minimum_group_keeps_no_answer_and_shows_no_score(bot_with_usage):
    bot, keys = bot_with_usage
    asks = ask_everyone(bot)
    for user in PEOPLE[:4]:  # min_group is 5
        await press(bot, user, asks[user], 5)
    bot.db.transact(csat.close_due, keys=keys, policy=bot.deps.policy.usage, now=utcnow() + timedelta(days=30))
    with bot.db.session() as s:
        assert s.scalars(select(UsageWindow)).one().answers == 4
        assert s.scalars(select(UsageAnswer)).all() == [] and s.scalars(select(UsageSealed)).all() == []
        measured = adoption.measure(session=s, policy=bot.deps.policy, now=utcnow(), weeks=2)
    deploy = next(c for c in measured.capabilities if c.name == "deploy")
    assert deploy.csat.scored == () and deploy.csat.average is None and deploy.csat.hidden_windows == 1
    assert deploy.csat.answers == 4


async def test_a_press_after_the_close_changes_nothing(bot_with_usage):
    bot, keys = bot_with_usage
    asks = ask_everyone(bot)
    bot.db.transact(csat.close_due, keys=keys, policy=bot.deps.policy.usage, now=utcnow() + timedelta(days=30))
    await press(bot, PEOPLE[0], asks[PEOPLE[0]], 3)
    with bot.db.session() as s:
        assert s.scalars(select(UsageSealed)).all() == [] and s.scalars(select(UsageAnswer)).all() == []
    said = bot.fake.calls_to("response_url")[-1].body
    assert "has closed" in json.dumps(said)
