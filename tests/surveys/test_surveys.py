"""Pulse surveys through the real app: runs started by the scheduler and by hand, audience from
channels, user groups and the database, DMs through the outbox at each person's hour, answers by
button and modal over signed requests, reminders, closing with results and a chart, anonymity
checked in the database, hosts filing comments, opt-out, the CSAT follow-up, and exactly-once
across restarts and two instances. On SQLite and PostgreSQL."""

import asyncio
import base64
import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import update
from sqlmodel import select

from bot.policy import CsatFollowup, Hosts, Policy, Survey, Triage
from bot.runtime.app import create_app
from bot.surveys.csat import CSAT_PURPOSE
from bot.surveys.results import nps_by_run, survey_results_for_report
from bot.surveys.runner import SurveyRunner
from bot.surveys.runs import job_name, queue_recipients
from bot.surveys.slack_reads import runner_for
from bot.surveys.timing import delivery_time, zone
from bot.triage import service as triage
from storage import surveys as store
from storage.friction import FrictionDraft, file_friction
from storage.models import FrictionPoint, OutboxMessage, OutboxStatus, ScheduledRun, Source, utcnow
from storage.surveys import CsatFollowup as CsatRow
from storage.surveys import NewRecipient, SurveyAnswer, SurveyRecipient, SurveyResponse, SurveyRun, SurveySealed
from tests.conftest import make_settings
from tests.fake_slack import BOT_USER, TOKEN
from tests.slack_requests import block_actions, element_action, interactive, slash_command, view_submission

UTC = timezone.utc
HOST = "U0HOST0001"
STRANGER = "U0STRANGE1"
ENG, PLATFORM, TRIAGE = "C0ENG00001", "C0PLATFORM", "C0TRIAGE01"
DEVS, PAYMENTS = "S0DEVS0001", "S0PAYMENTS"
ZONES = ["Europe/Berlin", "America/Los_Angeles", "Asia/Tokyo", "UTC"]
ENGINEERS = [f"U0ENG{i:05d}" for i in range(8)]  # in #eng; the first five are in @payments
GROUP_ONLY = ["U0GRP00001", "U0GRP00002"]  # in @devs but not in #eng
ACTIVE = "U0ACTIVE01"  # filed a report recently
GONE, ROBOT = "U0GONE0001", "U0ROBOT001"
QUESTIONS = [
    {"id": "nps", "kind": "nps", "text": "How likely are you to recommend the platform to a colleague?"},
    {"id": "ci", "kind": "csat", "text": "How satisfied are you with CI?"},
    {"id": "fix", "kind": "text", "text": "One thing we should fix next?"},
]
PULSE = Survey.model_validate({
    "name": "pulse", "title": "Platform pulse", "questions": QUESTIONS,
    "audience": {"channels": [ENG], "usergroups": [DEVS], "active_days": 30}, "segment_usergroups": [PAYMENTS],
    "schedule": "0 0 1 1,4,7,10 *", "timezone": "Europe/Berlin", "delivery_hour": 10, "min_group": 3,
    "results_channel": PLATFORM,
})
NAMED = Survey.model_validate({
    "name": "named", "questions": QUESTIONS[:2], "audience": {"channels": [ENG]}, "anonymous": False, "min_group": 3,
    "results_channel": PLATFORM, "close_after_days": 3,
})


@pytest.fixture
def policy() -> Policy:
    return Policy(hosts=Hosts(users=[HOST]), triage=Triage(channel=TRIAGE), surveys=[PULSE, NAMED],
                  csat_followup=CsatFollowup(enabled=True, delay_minutes=0))


@pytest.fixture(autouse=True)
def directory(fake_slack):
    for i, user in enumerate(ENGINEERS + GROUP_ONLY + [ACTIVE, HOST]):
        fake_slack.users[user] = {"tz": ZONES[i % len(ZONES)]}
    fake_slack.users[GONE] = {"deleted": True}
    fake_slack.users[ROBOT] = {"is_bot": True}
    fake_slack.users[BOT_USER] = {"is_bot": True}
    fake_slack.channel_members[ENG] = ENGINEERS + [GONE, ROBOT, BOT_USER]
    fake_slack.usergroups[DEVS] = GROUP_ONLY + ENGINEERS[:2]
    fake_slack.usergroups[PAYMENTS] = ENGINEERS[:5]
    return fake_slack


EVERYONE = set(ENGINEERS + GROUP_ONLY + [ACTIVE])


# ------------------------------------------------------------------ helpers


def runner_of(bot) -> SurveyRunner:
    """The app's one runner (its listeners, jobs and the reminders' hook share it)."""
    return bot.deps.once(runner_for)


def opened(bot, run: SurveyRun, user: str) -> dict | None:
    """A person's sealed answers in an open run, found under their pseudonym and opened with the bot's keys."""
    keys = runner_of(bot).keys
    nonce = rows(bot.db, SurveyRun, SurveyRun.id == run.id)[0].secret
    found = rows(bot.db, SurveySealed, SurveySealed.slot == keys.slot(run.id, nonce, user))
    return keys.open(run.id, nonce, user, found[0].sealed) if found else None


def file_report(db, user: str, text: str = "the build cache is cold") -> int:
    draft = FrictionDraft(team_id="T0TEAM001", filed_by=user, reporter_id=user, text=text, source=Source.command, intake_key=f"t:{user}:{text}")
    return db.transact(file_friction, draft=draft).point.id


def rows(db, model, *where) -> list:
    with db.session() as s:
        return list(s.exec(select(model).where(*where)).all())


def the_run(db, name: str = "pulse") -> SurveyRun:
    [run] = [r for r in rows(db, SurveyRun) if r.survey == name and r.status != "closed"] or [None]
    return run


def release_dms(db) -> None:
    """Time passes: every held survey message is due now."""
    with db.session() as s, s.begin():
        s.exec(update(OutboxMessage).where(OutboxMessage.status == OutboxStatus.pending).values(not_before=utcnow() - timedelta(seconds=1)))


def dms_to(bot, user: str) -> list[dict]:
    return [c.body for c in bot.fake.calls_to("chat.postMessage") if c.body.get("channel") == user]


def survey_dms(bot) -> list[dict]:
    return [c.body for c in bot.fake.calls_to("chat.postMessage") if "a short survey" in c.body.get("text", "")]


async def started(bot, survey: Survey = PULSE, *, now: bool = True, by: str = HOST) -> SurveyRun:
    """A run started by hand (DMs at once unless ``now`` is False), resolved, DMs sent."""
    runner = runner_of(bot)
    run = await runner.start(survey, started_by=by, deliver_now=now)
    assert await runner.resolve(run.id)
    await bot.drain()
    return run


def button(bot, dm: dict, question: str, raw: str, user: str) -> tuple[str, dict]:
    """The signed request Slack sends when ``user`` presses that answer button in ``dm``."""
    block = next(b for b in dm["blocks"] if b.get("block_id") == f"survey_q:{question}")
    element = next(e for e in block["elements"] if e["action_id"] == f"survey_answer:{raw}")
    url = f"{bot.fake.url}/response_url/{user}-{question}-{raw}"
    return interactive(block_actions([element_action(element)], block_id=block["block_id"], user=user, response_url=url, channel="D" + user[1:]))


async def click(bot, dm: dict, question: str, raw: str, user: str) -> None:
    resp = await bot.post(*button(bot, dm, question, raw, user))
    assert resp.status_code == 200
    await bot.drain()


def last_reply(bot) -> dict:
    return bot.fake.calls_to("response_url")[-1].body


async def answer(bot, user: str, nps: int, ci: int | None = None, survey: str = "pulse") -> dict:
    dm = next(d for d in reversed(dms_to(bot, user)) if "survey_q:nps" in json.dumps(d))
    await click(bot, dm, "nps", str(nps), user)
    if ci is not None:
        await click(bot, dm, "ci", str(ci), user)
    return last_reply(bot)


async def comment(bot, user: str, text: str | None, fix: str | None = None) -> dict:
    dm = next(d for d in reversed(dms_to(bot, user)) if "survey_q:nps" in json.dumps(d))
    block = next(b for b in dm["blocks"] if b.get("block_id") == "survey_comment")
    url = f"{bot.fake.url}/response_url/{user}-comment"
    await bot.post(*interactive(block_actions([element_action(block["accessory"])], block_id="survey_comment", user=user, response_url=url)))
    await bot.settle()
    view = bot.fake.calls_to("views.open")[-1].body["view"]
    values = {"survey_comment": {"survey_text": {"type": "plain_text_input", "value": text}}}
    if any(b["block_id"] == "survey_text:fix" for b in view["blocks"] if "block_id" in b):
        values["survey_text:fix"] = {"survey_text": {"type": "plain_text_input", "value": fix}}
    resp = await bot.post(*interactive(view_submission(view, values, user=user)))
    await bot.drain()
    return resp.json() if resp.content else {}


async def command(bot, text: str, user: str = HOST) -> str:
    await bot.post(*slash_command(text, fake_url=bot.fake.url, user=user))
    await bot.drain()
    last = bot.fake.calls_to("response_url")[-1].body
    return last.get("text", "") + json.dumps(last.get("blocks", []), ensure_ascii=False)


async def close(bot, run: SurveyRun) -> None:
    await runner_of(bot).tick(now=run.closes_at + timedelta(minutes=1))
    await bot.drain()


# ------------------------------------------------------------------ starting a run


async def test_a_scheduled_run_asks_the_audience_once_each_at_their_own_hour(bot):
    file_report(bot.db, ACTIVE)
    bot.db.transact(store.set_opt_out, user_id=ENGINEERS[7], out=True)
    occurrence = datetime(2025, 3, 31, 22, tzinfo=UTC)  # 1 April 00:00 in Berlin
    name = job_name(PULSE)
    assert name in bot.deps.scheduler.jobs
    assert await bot.deps.scheduler.run(name, occurrence) is True
    assert await bot.deps.scheduler.run(name, occurrence) is False  # a second instance's firing
    await bot.settle()  # the run's audience is resolved in the background
    run = the_run(bot.db)
    assert run.status == "open" and run.occurrence.astimezone(UTC) == occurrence and not run.manual
    recipients = {r.user_id: r for r in rows(bot.db, SurveyRecipient)}
    assert set(recipients) == EVERYONE - {ENGINEERS[7]}  # no bots, deactivated accounts or opted-out people
    assert run.recipients == len(recipients)
    assert {recipients[u].segment for u in ENGINEERS[:5]} == {f"usergroup:{DEVS}", f"usergroup:{PAYMENTS}"}
    assert recipients[ENGINEERS[6]].segment == f"channel:{ENG}" and recipients[ACTIVE].segment is None

    held = {json.loads(m.payload)["channel"]: m for m in rows(bot.db, OutboxMessage, OutboxMessage.dedupe_key.like("survey:%:dm:%"))}
    assert set(held) == set(recipients)
    for user, message in held.items():
        expected = delivery_time(run.started_at.replace(tzinfo=UTC), bot.fake.users[user]["tz"], 10)
        assert message.not_before.replace(tzinfo=UTC) == expected, user
        assert expected.astimezone(zone(bot.fake.users[user]["tz"])).hour == 10
    await bot.drain()
    assert survey_dms(bot) == []  # not their hour yet

    await runner_of(bot).tick()  # a restart, or another instance's tick: nothing twice
    release_dms(bot.db)
    await bot.drain()
    sent = survey_dms(bot)
    assert sorted(d["channel"] for d in sent) == sorted(recipients)
    dm = sent[0]
    shown = json.dumps(dm)
    assert "Anonymous" in shown and f"<#{PLATFORM}>" in shown and "surveys off" in shown
    await runner_of(bot).tick()
    assert all(r.delivered for r in rows(bot.db, SurveyRecipient))
    with bot.db.session() as s:
        assert len(s.exec(select(ScheduledRun)).all()) == 1


async def test_two_instances_on_one_database_run_it_once(bot, fake_slack, db, policy):
    other_settings = make_settings(fake_slack, db)
    _, other = create_app(other_settings, policy, db, client=AsyncWebClient(token=TOKEN, base_url=other_settings.slack_api_url))
    occurrence = datetime(2025, 6, 30, 22, tzinfo=UTC)
    results = await asyncio.gather(bot.deps.scheduler.run(job_name(PULSE), occurrence), other.scheduler.run(job_name(PULSE), occurrence))
    assert sorted(results) == [False, True]
    await bot.settle()
    mine, theirs = runner_of(bot), other.once(runner_for)
    await asyncio.gather(mine.tick(), theirs.tick(), mine.tick())
    release_dms(db)
    await bot.settle()
    await asyncio.gather(bot.deps.sender.drain_once(), other.sender.drain_once())
    await bot.drain()
    sent = sorted(d["channel"] for d in survey_dms(bot))
    assert sent == sorted(EVERYONE - {ACTIVE})  # ACTIVE filed nothing in this test
    assert len(rows(db, SurveyRun)) == 1


async def test_a_run_interrupted_half_way_carries_on_without_repeats(bot):
    runner = runner_of(bot)
    run = await runner.start(PULSE, started_by=HOST, deliver_now=True)
    # The first instance added two people, queued their DMs, and died holding the lease.
    now = utcnow()
    bot.db.transact(queue_recipients, run_id=run.id, people=[NewRecipient(u, "UTC", None, now) for u in ENGINEERS[:2]], policy=bot.deps.policy)
    bot.db.transact(store.take_lease, run_id=run.id, seconds=300)
    await runner.tick()
    assert the_run(bot.db).status == "resolving"  # the lease still holds: nobody else touches it
    with bot.db.session() as s, s.begin():
        s.exec(update(SurveyRun).values(lease_until=utcnow() - timedelta(seconds=1)))
    await runner.tick()
    await bot.drain()
    assert the_run(bot.db).status == "open"
    assert sorted(d["channel"] for d in survey_dms(bot)) == sorted(EVERYONE - {ACTIVE})


async def test_an_audience_channel_the_bot_cannot_read_is_recorded_not_fatal(bot, fake_slack):
    del fake_slack.channel_members[ENG]
    run = await started(bot)
    assert "channel C0ENG00001: channel_not_found" in rows(bot.db, SurveyRun, SurveyRun.id == run.id)[0].error
    assert {d["channel"] for d in survey_dms(bot)} == set(GROUP_ONLY + ENGINEERS[:2])


# ------------------------------------------------------------------ answering


async def test_one_answer_per_person_answering_again_changes_it(bot):
    run = await started(bot)
    user = ENGINEERS[0]
    reply = await answer(bot, user, 9, ci=4)
    assert reply["replace_original"] is True and "Saved" in json.dumps(reply)
    nps_buttons = next(b for b in reply["blocks"] if b.get("block_id") == "survey_q:nps")["elements"]
    assert [b["text"]["text"] for b in nps_buttons if b.get("style") == "primary"] == ["9"]
    await click(bot, reply, "nps", "3", user)  # from the updated message: changes the answer
    assert rows(bot.db, SurveyResponse) == [] and rows(bot.db, SurveyAnswer) == []  # nothing in the clear while open
    assert opened(bot, run, user) == {"a": {"nps": {"score": 3}, "ci": {"score": 4}}, "c": None}
    [recipient] = rows(bot.db, SurveyRecipient, SurveyRecipient.user_id == user)
    assert recipient.segment == f"usergroup:{DEVS}"
    # Two clicks at once from one person still make one answer set with both.
    dm = dms_to(bot, ENGINEERS[1])[0]
    await asyncio.gather(bot.post(*button(bot, dm, "nps", "10", ENGINEERS[1])), bot.post(*button(bot, dm, "ci", "5", ENGINEERS[1])))
    await bot.drain()
    assert opened(bot, run, ENGINEERS[1])["a"] == {"nps": {"score": 10}, "ci": {"score": 5}}
    # The comment modal: free text and a comment, changed again later.
    assert (await comment(bot, user, "More docs please", fix="flaky tests"))["response_action"] == "update"
    assert opened(bot, run, user)["a"]["fix"] == {"text": "flaky tests"}
    await comment(bot, user, "Even more docs", fix="")
    content = opened(bot, run, user)
    assert content["c"] == "Even more docs" and "fix" not in content["a"]
    # Someone who was not asked cannot answer through a copied button.
    await click(bot, dm, "nps", "0", STRANGER)
    assert rows(bot.db, SurveyRecipient, SurveyRecipient.user_id == STRANGER) == []
    assert len(rows(bot.db, SurveySealed)) == 2
    assert run.id == the_run(bot.db).id


async def test_answers_after_close_get_a_polite_no_and_change_nothing(bot):
    run = await started(bot)
    await answer(bot, ENGINEERS[0], 8)
    await close(bot, run)
    before = [(a.question, a.score) for a in rows(bot.db, SurveyAnswer)]
    reply = await answer(bot, ENGINEERS[0], 10)
    assert "This survey has closed" in reply["text"] and reply.get("replace_original") is False
    reply = await answer(bot, ENGINEERS[1], 10)
    assert "This survey has closed" in reply["text"]
    assert [(a.question, a.score) for a in rows(bot.db, SurveyAnswer)] == before


# ------------------------------------------------------------------ reminders


async def test_reminders_go_only_to_non_responders_and_at_most_twice(bot):
    run = await started(bot)
    await answer(bot, ENGINEERS[0], 9)
    deliver = rows(bot.db, SurveyRecipient, SurveyRecipient.user_id == ENGINEERS[1])[0].deliver_at.replace(tzinfo=UTC)
    closes = run.closes_at.replace(tzinfo=UTC)
    runner = runner_of(bot)
    await runner.tick(now=deliver + timedelta(hours=23))
    assert rows(bot.db, OutboxMessage, OutboxMessage.dedupe_key.like("survey:%:reminder%")) == []
    await runner.tick(now=deliver + timedelta(days=1, minutes=1))
    await runner.tick(now=deliver + timedelta(days=1, minutes=2))  # again, or from another instance
    await answer(bot, ENGINEERS[1], 7)  # answers after the reminder was queued: it is not sent
    await bot.drain()
    reminded = [c.body["channel"] for c in bot.fake.calls_to("chat.postMessage") if c.body.get("text", "").startswith("Reminder")]
    assert sorted(reminded) == sorted(EVERYONE - {ACTIVE, ENGINEERS[0], ENGINEERS[1]})
    await runner.tick(now=closes - timedelta(hours=13))
    await runner.tick(now=closes - timedelta(hours=12, minutes=30))
    await bot.drain()
    last = [c.body for c in bot.fake.calls_to("chat.postMessage") if "Last call" in json.dumps(c.body)]
    assert sorted(d["channel"] for d in last) == sorted(reminded)
    await runner.tick(now=closes - timedelta(minutes=5))
    await bot.drain()
    for user in EVERYONE - {ACTIVE}:
        reminders = [c for c in bot.fake.calls_to("chat.postMessage") if c.body["channel"] == user and c.body["text"].startswith("Reminder")]
        assert len(reminders) <= 2
    assert max(r.reminders for r in rows(bot.db, SurveyRecipient)) == 2


# ------------------------------------------------------------------ closing, results, anonymity


def user_id_images(user: str) -> set[str]:
    """A user id and what it hashes to without a secret."""
    raw = user.encode()
    images = {user, user.lower()}
    for name in ("md5", "sha1", "sha256", "sha512", "blake2b"):
        images.add(hashlib.new(name, raw).hexdigest())
    images.add(hmac.new(b"", raw, hashlib.sha256).hexdigest())
    return images


async def test_an_anonymous_run_keeps_no_link_from_answers_to_people(bot):
    run = await started(bot)
    for i, user in enumerate(ENGINEERS[:6]):
        await answer(bot, user, 10 - i, ci=1 + i % 5)
    await comment(bot, ENGINEERS[2], "Builds are slow", fix="caching")
    # While open: answers are sealed on each person's row, opened only with the bot's keys.
    assert opened(bot, run, ENGINEERS[0])["a"]["nps"] == {"score": 10} and rows(bot.db, SurveyResponse) == []
    await close(bot, run)

    closed = rows(bot.db, SurveyRun, SurveyRun.id == run.id)[0]
    assert closed.status == "closed" and closed.secret is None
    images = set().union(*(user_id_images(u) for u in EVERYONE | {HOST}))
    responses, answers = rows(bot.db, SurveyResponse), rows(bot.db, SurveyAnswer)
    assert len(responses) == 6
    for row in [*responses, *answers]:
        for column, value in row.model_dump().items():
            assert value is None or str(value) not in images, (type(row).__name__, column)
            assert not any(u in str(value) for u in EVERYONE), (type(row).__name__, column)
    assert all(r.user_id is None for r in responses)
    assert "respondent_key" not in SurveyResponse.model_fields and not {"user_id", "created_at", "answered_at"} & set(SurveyAnswer.model_fields)
    recipients = rows(bot.db, SurveyRecipient)
    assert rows(bot.db, SurveySealed) == [] and len({r.reminders for r in recipients}) == 1  # nothing tells who answered
    # A segment too small to show is generalised in the database, not just hidden on screen.
    segments = [r.segment for r in responses]
    assert f"usergroup:{DEVS}" not in segments and segments.count(f"usergroup:{PAYMENTS}") == 3  # @devs had 2 answers
    counts = {s: segments.count(s) for s in set(segments)}
    assert all(n >= PULSE.min_group for s, n in counts.items() if s is not None)
    assert counts.get(None, 0) == 0 or counts[None] >= PULSE.min_group


async def test_an_anonymous_run_with_too_few_answers_keeps_only_their_number(bot):
    run = await started(bot)
    await answer(bot, ENGINEERS[0], 2)
    await comment(bot, ENGINEERS[1], "I am the only one who uses the Windows runners")
    await close(bot, run)
    closed = rows(bot.db, SurveyRun, SurveyRun.id == run.id)[0]
    assert closed.responses == 2 and rows(bot.db, SurveyResponse) == [] and rows(bot.db, SurveyAnswer) == []
    [post] = [c.body for c in bot.fake.calls_to("chat.postMessage") if c.body["channel"] == PLATFORM]
    text = json.dumps(post)
    assert "*2* of 10 people answered" in text and "Fewer than 3 people answered" in text
    assert "Windows runners" not in text and "NPS" not in post["text"]
    assert rows(bot.db, OutboxMessage, OutboxMessage.dedupe_key == f"survey:{run.id}:chart") == []


async def test_closing_posts_results_with_segments_change_and_a_chart(bot):
    first = await started(bot)
    for user in ENGINEERS[:4]:
        await answer(bot, user, 5, ci=3)
    await close(bot, first)
    second = await started(bot)
    assert second.id != first.id
    for i, user in enumerate(ENGINEERS[:8]):
        await answer(bot, user, 10 if i < 4 else 8, ci=5)
    await comment(bot, ENGINEERS[0], "Please fix the flaky runner")
    await command(bot, "survey results pulse")  # on demand while open
    await close(bot, second)
    posts = [c.body for c in bot.fake.calls_to("chat.postMessage") if c.body["channel"] == PLATFORM]
    assert len(posts) == 2
    text = json.dumps(posts[-1], ensure_ascii=False)
    assert "Survey results: Platform pulse" in text
    assert "*NPS +50*" in text and "vs. the previous run (-100)" in text  # 4 promoters, 4 passives; before: all detractors
    assert "Average 5.00 / 5" in text and "*8* of 10 people answered" in text
    assert f"user group {PAYMENTS}" in text and f"user group {DEVS}" not in text and "<!subteam" not in text  # @devs had 2 of the answers: hidden
    assert "Please fix the flaky runner" in text and "File as friction" in text
    [chart] = rows(bot.db, OutboxMessage, OutboxMessage.dedupe_key == f"survey:{second.id}:chart")
    payload = json.loads(chart.payload)
    assert chart.method == "files.uploadV2"
    assert set(payload) == {"channel", "filename", "title", "initial_comment", "content_b64"} and payload["channel"] == PLATFORM
    assert base64.b64decode(payload["content_b64"]).startswith(b"\x89PNG")
    summary = bot.db.transact(survey_results_for_report)
    [pulse] = summary["surveys"]
    assert pulse["score"] == 50.0 and pulse["previous_score"] == -100.0 and pulse["change"] == 150.0
    assert pulse["responses"] == 8 and pulse["comments"] == 1 and "Please fix" not in json.dumps(summary)
    points = bot.db.transact(nps_by_run, start=utcnow() - timedelta(days=1), end=second.closes_at + timedelta(days=1))
    assert [(score, n) for _, score, n in points] == [(-100.0, 4), (50.0, 8)]
    from bot.insight import service as insight  # the loop numbers carry the NPS trend
    window = insight.Window(start=utcnow() - timedelta(days=1), end=second.closes_at + timedelta(days=1))
    assert [(p.score, p.responses) for p in bot.db.transact(insight.nps_series, window=window)] == [(-100.0, 4), (50.0, 8)]


async def test_the_chart_goes_out_through_the_outbox_as_a_file_upload(bot):
    run = await started(bot)
    for user in ENGINEERS[:3]:
        await answer(bot, user, 9)
    await close(bot, run)
    [complete] = bot.fake.calls_to("files.completeUploadExternal")
    assert complete.body["channel_id"] == PLATFORM and bot.fake.uploads and all(v for v in bot.fake.uploads.values())


async def test_hosts_turn_a_comment_into_a_data_point_once(bot):
    for survey, expected_reporter in ((PULSE, HOST), (NAMED, ENGINEERS[3])):
        run = await started(bot, survey)
        for user in ENGINEERS[:3]:
            await answer(bot, user, 6)
        await comment(bot, ENGINEERS[3], f"Staging is down every Monday ({survey.name})")
        await close(bot, run)
        post = [c.body for c in bot.fake.calls_to("chat.postMessage") if c.body["channel"] == PLATFORM][-1]
        block = next(b for b in post["blocks"] if "Staging is down" in b.get("text", {}).get("text", ""))
        assert (f"<@{ENGINEERS[3]}>" in block["text"]["text"]) is (not survey.anonymous)
        for user in (STRANGER, HOST, HOST):
            url = f"{bot.fake.url}/response_url/file-{user}"
            await bot.post(*interactive(block_actions([element_action(block["accessory"])], block_id=block.get("block_id", "x"),
                                                      user=user, response_url=url, channel=PLATFORM)))
            await bot.drain()
        texts = [c.body["text"] for c in bot.fake.calls_to("response_url")][-3:]
        assert "Only platform hosts" in texts[0] and texts[1].startswith("Filed FB-") and "already FB-" in texts[2]
        [point] = rows(bot.db, FrictionPoint, FrictionPoint.text == f"Staging is down every Monday ({survey.name})")
        assert [r.user_id for r in point.reporters] == [expected_reporter] and point.filed_by == HOST and point.source == "survey"
        assert any(c.body["channel"] == TRIAGE for c in bot.fake.calls_to("chat.postMessage"))  # its triage card


# ------------------------------------------------------------------ commands, opt-out


async def test_commands_list_opt_out_send_and_results(bot):
    listed = await command(bot, "surveys", user=ENGINEERS[0])
    assert "pulse" in listed and "Platform pulse" in listed and "0 0 1 1,4,7,10 *" in listed and "surveys off" in listed
    assert "won't get survey DMs" in await command(bot, "surveys off", user=ENGINEERS[0])
    assert "surveys on" in await command(bot, "surveys", user=ENGINEERS[0])
    assert "Only platform hosts" in await command(bot, "survey send pulse", user=ENGINEERS[1])
    assert "no survey named" in await command(bot, "survey send nope")
    assert "Usage" in await command(bot, "survey")
    assert "has not run yet" in await command(bot, "survey results pulse")
    assert "Started pulse" in await command(bot, "survey send pulse now")
    await bot.settle()
    await bot.drain()
    assert ENGINEERS[0] not in {d["channel"] for d in survey_dms(bot)}
    assert ENGINEERS[1] in {d["channel"] for d in survey_dms(bot)}
    assert "already open" in await command(bot, "survey send pulse")
    assert "Survey so far: Platform pulse" in await command(bot, "survey results pulse")
    assert "Only platform hosts" in await command(bot, "survey results pulse", user=ENGINEERS[1])
    assert "get survey DMs again" in await command(bot, "surveys on", user=ENGINEERS[0])
    assert rows(bot.db, store.SurveyOptOut) == []


async def test_two_hosts_sending_at_once_start_one_run(bot):
    runner = runner_of(bot)
    results = await asyncio.gather(*(runner.start(PULSE, started_by=HOST) for _ in range(3)), return_exceptions=True)
    assert sum(isinstance(r, SurveyRun) for r in results) == 1
    assert all("already open" in str(r) for r in results if not isinstance(r, SurveyRun))
    assert len(rows(bot.db, SurveyRun)) == 1


async def test_someone_who_opts_out_after_the_run_started_gets_nothing_more(bot):
    runner = runner_of(bot)
    run = await runner.start(PULSE, started_by=HOST, deliver_now=False)
    await runner.resolve(run.id)
    await command(bot, "surveys off", user=ENGINEERS[4])
    release_dms(bot.db)
    await bot.drain()
    assert ENGINEERS[4] not in {d["channel"] for d in survey_dms(bot)} and ENGINEERS[5] in {d["channel"] for d in survey_dms(bot)}


# ------------------------------------------------------------------ the CSAT follow-up


async def test_resolving_a_report_asks_its_reporter_whether_it_solved_the_problem(bot):
    await bot.post(*slash_command("the staging database keeps timing out", fake_url=bot.fake.url, user=ENGINEERS[0]))
    await bot.drain()
    await command(bot, "resolve FB-1 raised the connection limit")
    [followup] = rows(bot.db, CsatRow)
    assert followup.user_id == ENGINEERS[0] and followup.friction_point_id == 1
    await bot.drain()
    [dm] = [d for d in dms_to(bot, ENGINEERS[0]) if "Did this solve your problem?" in d["text"]]
    block = next(b for b in dm["blocks"] if b.get("block_id") == "csat_followup")
    assert [e["text"]["text"][0] for e in block["elements"]] == ["1", "2", "3", "4", "5"]
    url = f"{bot.fake.url}/response_url/csat"
    await bot.post(*interactive(block_actions([element_action(block["elements"][3])], block_id="csat_followup", user=ENGINEERS[0], response_url=url)))
    await bot.post(*interactive(block_actions([element_action(block["elements"][3])], block_id="csat_followup", user=STRANGER, response_url=url)))
    await bot.drain()
    assert rows(bot.db, CsatRow)[0].score == 4  # the stranger's click changed nothing
    reply = last_reply(bot)
    assert reply["replace_original"] is True and "Thanks, noted" in json.dumps(reply)
    report = bot.db.transact(survey_results_for_report)["csat_followup"]
    assert (report["asked"], report["answered"], report["average"]) == (1, 1, 4.0)


async def test_the_follow_up_is_dropped_if_the_report_was_reopened_meanwhile(bot):
    await bot.post(*slash_command("vpn drops every hour", fake_url=bot.fake.url, user=ENGINEERS[1]))
    await bot.drain()
    await bot.post(*slash_command("resolve FB-1 new vpn profile", fake_url=bot.fake.url, user=HOST))
    await bot.settle()
    with bot.db.session() as s, s.begin():  # held for a while (delay_minutes)
        s.exec(update(OutboxMessage).where(OutboxMessage.purpose == CSAT_PURPOSE).values(not_before=utcnow() + timedelta(hours=1)))
    assert len(rows(bot.db, CsatRow)) == 1
    bot.db.transact(triage.reopen, point_id=1, actor=HOST, prefix="FB")
    release_dms(bot.db)
    await bot.drain()
    assert not [d for d in dms_to(bot, ENGINEERS[1]) if "Did this solve" in d["text"]]


def test_recipients_added_twice_or_by_two_instances_at_once_are_added_once(db, monkeypatch):
    run = db.transact(store.create_run, survey="pulse", definition=PULSE.model_dump_json(), anonymous=True,
                      occurrence=utcnow(), closes_at=utcnow() + timedelta(days=7))
    people = [NewRecipient(u, "UTC", None, utcnow()) for u in ENGINEERS[:3]]
    assert [r.user_id for r in db.transact(store.add_recipients, run_id=run.id, people=people[:1])] == ENGINEERS[:1]
    real, reads = store.recipient_ids, []

    def stale(*, session, run_id):  # the first read misses the row another instance just added
        reads.append(run_id)
        return set() if len(reads) == 1 else real(session=session, run_id=run_id)

    monkeypatch.setattr(store, "recipient_ids", stale)
    added = db.transact(store.add_recipients, run_id=run.id, people=people + people)
    assert sorted(r.user_id for r in added) == ENGINEERS[1:3]
    assert sorted(r.user_id for r in rows(db, SurveyRecipient)) == ENGINEERS[:3]


async def test_forgetting_a_person_and_purging_old_reports_cover_survey_data(bot):
    from storage import privacy

    for n, user in enumerate((ENGINEERS[0], ENGINEERS[2]), 1):
        await bot.post(*slash_command(f"the runners are slow, take {n}", fake_url=bot.fake.url, user=user))
        await bot.drain()
        await command(bot, f"resolve FB-{n} faster runners")
    assert sorted(f.user_id for f in rows(bot.db, CsatRow)) == [ENGINEERS[0], ENGINEERS[2]]
    named = await started(bot, NAMED)
    await answer(bot, ENGINEERS[0], 9)
    await close(bot, named)
    await started(bot, PULSE)
    await answer(bot, ENGINEERS[0], 7)
    await answer(bot, ENGINEERS[1], 8)

    keys = runner_of(bot).keys
    done = bot.db.transact(store.forget_user, user_id=ENGINEERS[0], slot_of=lambda run_id, nonce: keys.slot(run_id, nonce, ENGINEERS[0]))
    assert done == {"survey_responses_removed": 1, "survey_names_removed": 1, "survey_recipient_entries_removed": 2,
                    "csat_followups_removed": 1}
    assert [r.user_id for r in rows(bot.db, SurveyResponse, SurveyResponse.run_id == named.id)] == [None]
    # In the open run: their sealed answers are gone; ENGINEERS[1]'s are kept.
    [run] = rows(bot.db, SurveyRun, SurveyRun.status == "open")
    assert opened(bot, run, ENGINEERS[0]) is None and opened(bot, run, ENGINEERS[1])["a"]["nps"] == {"score": 8}
    assert len(rows(bot.db, SurveySealed)) == 1
    assert ENGINEERS[0] not in {r.user_id for r in rows(bot.db, SurveyRecipient)}

    assert bot.db.transact(privacy.purge_older_than, cutoff=utcnow() + timedelta(days=1)) == 2
    assert rows(bot.db, CsatRow) == []  # went with the purged report (ON DELETE CASCADE)
