"""POST /events/usage through the app: signed events stored once; bad signatures, replays, stale
timestamps, bad bodies and unknown capabilities refused with one line and nothing stored; a flood
answered 429 with Retry-After; the route absent (404) without USAGE_SIGNING_SECRET."""

import json
import time

import pytest
from sqlmodel import select

from bot.usage import signing
from bot.usage.slack_reads import settler_for
from storage.models import SeenRequest, UsageEvent
from tests.usage.helpers import USAGE_SECRET, event, signed_event, usage_policy


@pytest.fixture
def policy():
    return usage_policy()


@pytest.fixture
def settings_overrides():
    return {"usage_signing_secret": USAGE_SECRET}


def stored(bot) -> list[UsageEvent]:
    with bot.db.session() as s:
        return list(s.scalars(select(UsageEvent).order_by(UsageEvent.id)).all())


async def post(bot, body: bytes, headers: dict):
    return await bot.http.post("/events/usage", content=body, headers=headers)


async def test_a_signed_event_is_stored_once_by_its_id(bot):
    payload = event(id="ci-4711", user="U0DEV0001", outcome="failed", duration_ms=84000, subject="payments-api",
                    at="2026-11-02T10:00:00Z")
    r = await post(bot, *signed_event(payload))
    assert r.status_code == 202 and r.json() == {"ok": True, "stored": True}
    again = await post(bot, *signed_event(payload, now=time.time() + 1))  # the same event, signed anew (a retry)
    assert again.status_code == 202 and again.json()["stored"] is False
    rows = stored(bot)
    assert len(rows) == 1
    row = rows[0]
    assert (row.key, row.capability, row.user_id, row.outcome, row.duration_ms, row.subject) == \
        ("ci-4711", "deploy", "U0DEV0001", "failed", 84000, "payments-api")
    assert row.at.isoformat() == "2026-11-02T10:00:00+00:00"


async def test_a_time_in_the_future_is_taken_as_the_time_of_receipt(bot):
    before = time.time()
    r = await post(bot, *signed_event(event(at="2099-01-01T00:00:00Z")))
    assert r.status_code == 202
    assert before - 1 <= stored(bot)[0].at.timestamp() <= time.time() + 1


@pytest.mark.parametrize("change, status, says", [
    ({"x-usage-signature": "v1=" + "0" * 64}, 401, "bad signature"),
    ({"x-usage-signature": ""}, 401, "unsigned"),
    ({"x-usage-timestamp": "²".encode("latin-1")}, 401, "Unix seconds"),
    ({"x-usage-timestamp": "12.5"}, 401, "Unix seconds"),
], ids=["wrong", "unsigned", "superscript", "fraction"])
async def test_bad_signatures_are_refused_and_nothing_is_stored(bot, change, status, says):
    body, headers = signed_event(event())
    r = await post(bot, body, {**headers, **change})
    assert r.status_code == status and says in r.text
    assert stored(bot) == []


async def test_a_stale_timestamp_and_another_secret_are_refused(bot):
    r = await post(bot, *signed_event(event(), now=time.time() - signing.WINDOW - 5))
    assert r.status_code == 401 and "from the bot's clock" in r.text
    r = await post(bot, *signed_event(event(), secret="another-secret-entirely-0000"))
    assert r.status_code == 401 and "bad signature" in r.text
    assert stored(bot) == []


async def test_a_replay_is_refused_and_stores_nothing_more(bot):
    body, headers = signed_event(event(id="ci-once"))
    assert (await post(bot, body, headers)).status_code == 202
    other_body, _ = signed_event(event(id="ci-other"))
    replay = await post(bot, body, headers)
    assert replay.status_code == 409 and "replayed request" in replay.text
    # The replayed signature over another body is simply a bad signature.
    assert (await post(bot, other_body, headers)).status_code == 401
    assert [r.key for r in stored(bot)] == ["ci-once"]
    with bot.db.session() as s:
        assert s.scalars(select(SeenRequest)).first().signature == headers["x-usage-signature"]


@pytest.mark.parametrize("payload, says", [
    (b"not json", "one JSON object"),
    (b"[1, 2]", "one JSON object"),
    (json.dumps(event(id="ci-1", capability="teleport")).encode(), 
     "capability 'teleport' is not in the policy's usage.capabilities (known: deploy, new-service)"),
    (json.dumps(event(id="ci-2", user="alice")).encode(), "user must be a Slack member id"),
    (json.dumps({**event(id="ci-3"), "email": "a@example.com"}).encode(), "exactly one of user"),
    (json.dumps(event(id="ci-4", outcome="meh")).encode(), "outcome must be"),
    (json.dumps(event(id="ci-5", duration_ms=-1)).encode(), "duration_ms"),
    (json.dumps(event(id="ci-6", at="yesterday")).encode(), "ISO 8601"),
    (json.dumps(event(id="ci-7", at="2026-11-02T10:00:00")).encode(), "no time zone"),
    (json.dumps(event(id="ci-8", at="2020-01-01T00:00:00Z")).encode(), "more than 400 days ago"),
    (json.dumps(event(id="has space")).encode(), "id must be"),
    (json.dumps(event(id="ci-9", colour="red")).encode(), "unknown field 'colour'"),
], ids=["not-json", "array", "unknown-capability", "user", "both", "outcome", "duration", "at", "naive", "old", "id", "field"])
async def test_bad_bodies_and_unknown_capabilities_get_one_clear_400(bot, payload, says):
    r = await post(bot, *signed_event(payload))
    assert r.status_code == 400, r.text
    assert says in r.text and "\n" not in r.text.strip()
    assert stored(bot) == []


async def test_a_body_over_the_bound_is_refused_before_it_is_read(bot):
    body, headers = signed_event(json.dumps(event(subject="x" * 20_000)).encode())
    r = await post(bot, body, headers)
    assert r.status_code == 413
    assert stored(bot) == []


async def test_a_flood_from_one_address_gets_429_with_retry_after(fake_slack, db, policy):
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.runtime.app import create_app
    from tests.conftest import make_settings, serving_bot
    from tests.fake_slack import TOKEN

    settings = make_settings(fake_slack, db, usage_signing_secret=USAGE_SECRET, usage_events_per_second=5)
    app, deps = create_app(settings, policy, db, client=AsyncWebClient(token=TOKEN, base_url=settings.slack_api_url))
    async with serving_bot(app, deps, fake_slack, db) as b:
        answers = [await post(b, *signed_event(event())) for _ in range(15)]
        await deps.once(settler_for).idle()
    codes = [r.status_code for r in answers]
    assert codes[:10] == [202] * 10  # the bucket holds two seconds' worth
    refused = [r for r in answers if r.status_code == 429]
    assert refused and all(int(r.headers["retry-after"]) >= 1 for r in refused)
    assert "at most 5 per second" in refused[0].text
    assert len(stored(b)) == codes.count(202)


async def test_without_the_secret_the_route_is_not_there(fake_slack, db, policy):
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.runtime.app import create_app
    from tests.conftest import make_settings, serving_bot
    from tests.fake_slack import TOKEN

    settings = make_settings(fake_slack, db)
    app, deps = create_app(settings, policy, db, client=AsyncWebClient(token=TOKEN, base_url=settings.slack_api_url))
    async with serving_bot(app, deps, fake_slack, db) as b:
        r = await post(b, *signed_event(event()))
    assert r.status_code == 404
    assert stored(b) == []


async def test_an_email_is_looked_up_after_the_answer_and_not_kept(bot):
    bot.fake.users["U0DEV0007"] = {"email": "dev7@example.com", "tz": "Europe/Berlin"}
    r = await post(bot, *signed_event({"id": "e-1", "capability": "new-service", "email": "Dev7@Example.com"}))
    assert r.status_code == 202
    r = await post(bot, *signed_event({"id": "e-2", "capability": "new-service", "email": "nobody@example.com"}))
    assert r.status_code == 202
    await bot.deps.once(settler_for).idle()
    rows = stored(bot)
    assert [(e.key, e.user_id, e.pending_email, e.settled) for e in rows] == [("e-1", "U0DEV0007", None, True)]
    assert len(bot.fake.calls_to("users.lookupByEmail")) == 2
