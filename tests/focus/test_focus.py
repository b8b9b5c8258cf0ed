"""The quarter's focus through the real app, with a frozen clock: a pulse survey run, picks (hosts
and leads only; not a merged, deleted or closed report, not past the size), publish (one post, one
DM per reporter, duplicates' reporters included), the post kept up to date as the linked issue is
closed by a signed tracker webhook, the weekly changelog marking it, a second pulse run, and the
end-of-period report once with the right before/after numbers. SQLite and PostgreSQL."""

import json
from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from sqlmodel import select

from bot.changelog import service as changelog
from bot.focus import data as focus_data
from bot.focus import service as focus
from bot.focus.jobs import JOB
from bot.insight import service as insight
from bot.policy import Closing, Focus, Hosts, Insight, Policy, Survey, Triage
from bot.surveys.slack_reads import runner_for
from bot.triage import service as triage
from storage.focus import FocusItem, FocusPeriod
from storage.models import FrictionPoint, OutboxMessage
from tests import tracker_requests as tr
from tests.slack_requests import USER, block_actions, interactive, modal_values, slash_command, view_submission
from tests.surveys import test_surveys as surveys

UTC = timezone.utc
HOST, LEAD, STRANGER, OTHER, LATE = "U0HOST0001", "U0LEAD0001", "U0STRANGE1", "U0OTHER001", "U0LATE0001"
ANNOUNCE, TRIAGE, ENG = "C0ANNOUNCE", "C0TRIAGE01", "C0ENG00001"
ENGINEERS = [f"U0ENG{i:05d}" for i in range(6)]
PULSE = Survey.model_validate({
    "name": "pulse", "questions": [{"id": "nps", "kind": "nps", "text": "Recommend the platform?"},
                                   {"id": "ci", "kind": "csat", "text": "How satisfied are you with the platform?"}],
    "audience": {"channels": [ENG]}, "min_group": 3, "results_channel": TRIAGE,
})


@pytest.fixture
def policy() -> Policy:
    return Policy(hosts=Hosts(users=[HOST]), triage=Triage(channel=TRIAGE), closing=Closing(announce_channel=ANNOUNCE, announce="weekly"),
                  focus=Focus(size=2, leads=[LEAD]), surveys=[PULSE], insight=Insight(digest_weekday="fri", digest_time="16:00"))


@pytest.fixture
def settings_overrides() -> dict:
    return tr.SETTINGS


@pytest.fixture
def clock():
    """The wall clock, frozen; a test moves it (``clock.move_to``)."""
    with time_machine.travel(datetime(2026, 10, 1, 9, tzinfo=UTC), tick=False) as traveller:
        yield traveller


@pytest.fixture(autouse=True)
def directory(fake_slack):
    for user in ENGINEERS:
        fake_slack.users[user] = {"tz": "UTC"}
    fake_slack.channel_members[ENG] = ENGINEERS
    return fake_slack


async def file(bot, text: str, user: str) -> int:
    await bot.post(*slash_command(text, fake_url=bot.fake.url, user=user))
    await bot.drain()
    with bot.db.session() as s:
        return s.exec(select(FrictionPoint.id).order_by(FrictionPoint.id.desc())).first()


def responses(bot) -> list[dict]:
    return [c.body for c in bot.fake.calls_to("response_url")]


async def command(bot, text: str, user: str) -> dict:
    await bot.post(*slash_command(text, fake_url=bot.fake.url, user=user))
    await bot.settle()
    return responses(bot)[-1]


async def click(bot, action_id: str, value: str, user: str) -> dict:
    action = {"action_id": action_id, "type": "button", "value": value, "text": {"type": "plain_text", "text": "x"}, "action_ts": "1.2"}
    await bot.post(*interactive(block_actions([action], block_id="focus", user=user, response_url=f"{bot.fake.url}/response_url/x")))
    await bot.settle()
    return responses(bot)[-1]


def buttons(message: dict) -> dict[str, str]:
    return {e["value"]: e["action_id"] for b in message["blocks"] for e in ([b["accessory"]] if "accessory" in b else b.get("elements", []))
            if e.get("type") == "button"}


async def pulse(bot, clock, start: datetime, answers: list[tuple[int, int]]) -> None:
    """A real pulse run: started, its DMs sent, ``answers`` (NPS, CSAT) clicked by the first
    engineers, closed a week later (the clock moves to then)."""
    clock.move_to(start)
    runner = runner_for(bot.deps)
    run = await runner.start(PULSE, started_by=HOST, deliver_now=True)
    assert await runner.resolve(run.id)
    await bot.drain()
    for user, (nps, csat) in zip(ENGINEERS, answers, strict=False):
        await surveys.answer(bot, user, nps, ci=csat)
    clock.move_to(start + timedelta(days=7, minutes=1))
    await runner.tick()
    await bot.drain()


async def tick(bot, clock, at: datetime, job: str = JOB) -> bool:
    clock.move_to(at)
    ran = await bot.deps.scheduler.run(job, at)
    await bot.drain()
    return ran


def announced(bot) -> list[dict]:
    return [c.body for c in bot.fake.calls_to("chat.postMessage") if c.body["channel"] == ANNOUNCE]


async def test_a_whole_quarter(bot, clock):
    # Before the quarter's focus: a pulse run (4 answers: NPS 0, CSAT 3.5) and the reports.
    await pulse(bot, clock, datetime(2026, 9, 20, 9, tzinfo=UTC), [(9, 4), (10, 5), (6, 2), (3, 3)])
    clock.move_to(datetime(2026, 10, 1, 9, tzinfo=UTC))
    await bot.post(*slash_command("", fake_url=bot.fake.url))
    await bot.settle()
    view = bot.fake.calls_to("views.open")[-1].body["view"]
    await bot.post(*interactive(view_submission(view, modal_values(
        "the deploy pipeline times out on large monorepos", categories=["deploys"], severity="high", time_lost="120"))))
    await bot.drain()
    with bot.db.session() as s:
        first = s.exec(select(FrictionPoint.id)).one()
    clock.move_to(datetime(2026, 10, 2, 9, tzinfo=UTC))
    dup = await file(bot, "deploys time out on the monorepo again <!channel>", OTHER)
    clock.move_to(datetime(2026, 10, 3, 9, tzinfo=UTC))
    await file(bot, "docs for the VPN setup are out of date", STRANGER)
    with bot.db.session() as s:
        triage.merge(session=s, point_id=dup, into_id=first, actor=HOST, prefix="FB")
        s.commit()

    # Picked on 13 October (a lead may pick), with baselines; then published.
    clock.move_to(datetime(2026, 10, 13, 10, tzinfo=UTC))
    picker = await command(bot, "focus", HOST)
    offered = buttons(picker)
    assert f"report:{first}" in offered and f"report:{dup}" not in offered  # merged: not a candidate
    picked = await click(bot, "focus_pick", f"report:{first}", LEAD)
    assert f"report:{first}" in json.dumps(picked) and "Drop" in json.dumps(picked)
    await click(bot, "focus_pick", "area:docs", HOST)
    baselines = {i.subject: json.loads(i.baseline) for i in rows(bot, FocusItem)}
    report_base = baselines[f"report:{first}"]
    assert (report_base["reporters"], report_base["reports_per_week"], report_base["hours_lost_per_week"]) == (2, 0.47, 0.47)
    assert report_base["score"] == round(insight.point_score(2, "high", 120), 2)
    assert report_base["pulse"]["nps"] == 0.0 and report_base["pulse"]["csat"] == 3.5 and report_base["pulse"]["nps_answers"] == 4

    await command(bot, "focus publish", HOST)
    await bot.drain()
    [announcement] = announced(bot)
    assert "We heard you" in announcement["text"] and "raised by 2 people" in json.dumps(announcement)
    posts = [c.body for c in bot.fake.calls_to("chat.postMessage")]
    dms = [p["channel"] for p in posts if "focus for" in p["text"]]
    assert sorted(dms) == sorted([USER, OTHER, STRANGER])  # the duplicate's reporter too, once each
    assert "<!channel>" not in json.dumps([p for p in posts if p["channel"] in (ANNOUNCE, OTHER)])
    assert "already published" in (await command(bot, "focus publish", HOST))["text"]

    # Linked, then closed by a signed GitHub webhook: the reporters are told, the post updated once per state.
    clock.move_to(datetime(2026, 10, 20, 10, tzinfo=UTC))
    await command(bot, f"link FB-{first} https://github.com/acme/platform/issues/42", HOST)
    await tick(bot, clock, datetime(2026, 10, 20, 10, 15, tzinfo=UTC))
    clock.move_to(datetime(2026, 11, 3, 11, tzinfo=UTC))
    before = len(bot.fake.calls_to("chat.postMessage"))
    body, headers = tr.github("issues", tr.github_issue("acme/platform", 42))
    assert (await bot.http.post("/webhooks/github", content=body, headers=headers)).status_code == 200
    await bot.drain()
    told = [c.body["channel"] for c in bot.fake.calls_to("chat.postMessage")[before:] if "acme/platform#42" in json.dumps(c.body)]
    assert sorted(told) == sorted([USER, OTHER])
    await tick(bot, clock, datetime(2026, 11, 3, 11, 15, tzinfo=UTC))
    await tick(bot, clock, datetime(2026, 11, 3, 11, 30, tzinfo=UTC))  # nothing changed since: no update
    updates = [c.body for c in bot.fake.calls_to("chat.update") if c.body.get("channel") == ANNOUNCE]
    assert len(updates) == 2 and "acme/platform#42" in json.dumps(updates[0]) and "fixed" in json.dumps(updates[1])
    assert {u["ts"] for u in updates} == {announcement_ts(bot)}

    # The weekly changelog: the fix, its two reporters, marked as this quarter's focus.
    friday = changelog.latest_slot(datetime(2026, 11, 6, 16, 0, tzinfo=UTC), "fri", "16:00", "UTC")
    assert await tick(bot, clock, friday, changelog.JOB)
    [weekly] = [p for p in announced(bot) if "You said, we did" in p["text"]]
    assert "acme/platform#42" in json.dumps(weekly) and "2 people" in json.dumps(weekly) and "this quarter's focus" in json.dumps(weekly)

    # December: two more docs reports; a second pulse run (5 answers: NPS 40, CSAT 4.2).
    for day, user in ((10, LATE), (11, HOST)):
        clock.move_to(datetime(2026, 12, day, 9, tzinfo=UTC))
        await file(bot, f"the docs for the VPN setup are still out of date ({day})", user)
    await pulse(bot, clock, datetime(2026, 12, 14, 9, tzinfo=UTC), [(9, 5), (10, 5), (10, 4), (8, 4), (6, 3)])

    # After the quarter: the report once (a second firing, or another instance, posts nothing more).
    assert await tick(bot, clock, datetime(2027, 1, 1, 0, 15, tzinfo=UTC))
    await tick(bot, clock, datetime(2027, 1, 1, 0, 30, tzinfo=UTC))
    [final] = [p for p in announced(bot) if "What changed" in p["text"]]
    text = json.dumps(final, ensure_ascii=False)
    score = round(insight.point_score(2, "high", 120), 2)
    assert "2026-Q4" in text
    assert f"score {score:g} → 0 · reports/week 0.47 → 0 · hours lost/week 0.47 → 0 · 2 reporters told it was fixed" in text
    assert "reports/week 0.23 → 0.47" in text  # the docs area: worse, and said so
    assert "NPS: 0 (4 answers) → 40 (5 answers)" in text and "CSAT: 3.5 (4 answers) → 4.2 (5 answers)" in text
    with bot.db.session() as s:
        assert len(s.exec(select(OutboxMessage).where(OutboxMessage.dedupe_key == "focus:2026-Q4:report")).all()) == 1

    # On demand in the next quarter (nothing picked yet): the finished quarter, the same numbers.
    shown = json.dumps(await command(bot, "focus report", STRANGER), ensure_ascii=False)
    assert "2026-Q4" in shown and "NPS: 0 (4 answers) → 40 (5 answers)" in shown and f"score {score:g} → 0" in shown
    data = bot.db.transact(focus_data.gather, policy=bot.deps.policy)
    assert data["period"] == "2026-Q4" and data["ended"] is True
    assert data["pulse"][0] == {"name": "NPS", "shown": True, "same_run": False,
                                "before": {"score": 0.0, "answers": 4}, "after": {"score": 40.0, "answers": 5}}
    report_item = next(i for i in data["items"] if i["subject"] == f"report:{first}")
    assert report_item["now"]["told_fixed"] == 2 and report_item["fixed"] is True and report_item["baseline"]["score"] == score


async def test_a_thin_pulse_is_not_compared(bot, clock):
    """Issue #18: the NPS/CSAT before and after are shown only when both runs had the survey's
    min_group answers; the counts are still given."""
    await pulse(bot, clock, datetime(2026, 9, 20, 9, tzinfo=UTC), [(9, 4), (10, 5), (6, 2), (3, 3)])
    clock.move_to(datetime(2026, 10, 5, 9, tzinfo=UTC))
    await file(bot, "docs for the VPN setup are out of date", STRANGER)
    await click(bot, "focus_pick", "area:docs", HOST)
    shown = json.dumps(await command(bot, "focus report", HOST), ensure_ascii=False)
    assert "NPS: no pulse since the baseline (0, 4 answers)" in shown
    await pulse(bot, clock, datetime(2026, 11, 2, 9, tzinfo=UTC), [(10, 5), (10, 5)])  # 2 answers, min_group 3
    clock.move_to(datetime(2026, 11, 10, 9, tzinfo=UTC))
    shown = json.dumps(await command(bot, "focus report", HOST), ensure_ascii=False)
    assert "NPS: not enough answers on both sides to compare (4 before, 2 after)" in shown
    assert "CSAT: not enough answers on both sides to compare (4 before, 2 after)" in shown


async def test_bad_picks_get_a_clear_answer_and_change_nothing(bot):
    first = await file(bot, "the deploy pipeline times out on large monorepos", USER)
    dup = await file(bot, "deploys time out on the monorepo again", OTHER)
    closed = await file(bot, "the VPN drops every hour", STRANGER)
    with bot.db.session() as s:
        triage.merge(session=s, point_id=dup, into_id=first, actor=HOST, prefix="FB")
        triage.resolve(session=s, point_id=closed, actor=HOST, note="new VPN", prefix="FB")
        s.commit()
    assert "Only office-hours hosts" in (await click(bot, "focus_pick", f"report:{first}", STRANGER))["text"]
    assert "merged into" in (await click(bot, "focus_pick", f"report:{dup}", HOST))["text"]
    assert "There is no FB-999" in (await click(bot, "focus_pick", "report:999", HOST))["text"]  # deleted since the list was shown
    assert "already closed" in (await click(bot, "focus_pick", f"report:{closed}", HOST))["text"]
    assert "no area 'nonsense'" in (await click(bot, "focus_pick", "area:nonsense", HOST))["text"]
    assert "not a report or an area" in (await click(bot, "focus_pick", "<!channel>", HOST))["text"]
    assert rows(bot, FocusItem) == [] and rows(bot, FocusPeriod) == []
    await click(bot, "focus_pick", f"report:{first}", HOST)
    assert "already in" in (await click(bot, "focus_pick", f"report:{first}", HOST))["text"]
    await click(bot, "focus_pick", "area:docs", HOST)
    assert "holds 2 items" in (await click(bot, "focus_pick", "area:ci", HOST))["text"]
    assert "Only office-hours hosts" in (await click(bot, "focus_drop", "area:docs", STRANGER))["text"]
    assert "not in this quarter's focus" in (await click(bot, "focus_drop", "area:ci", HOST))["text"]
    assert "Only office-hours hosts" in (await command(bot, "focus publish", STRANGER))["text"]
    assert sorted(i.subject for i in rows(bot, FocusItem)) == sorted([f"report:{first}", "area:docs"])
    assert [p.published_at for p in rows(bot, FocusPeriod)] == [None]
    await bot.drain()
    assert bot.fake.calls_to("chat.postMessage") == [] or all("focus" not in c.body.get("text", "") for c in bot.fake.calls_to("chat.postMessage"))


def rows(bot, model) -> list:
    with bot.db.session() as s:
        return list(s.exec(select(model)).all())


def announcement_ts(bot) -> str:
    from storage.focus import FocusPeriod

    with bot.db.session() as s:
        return s.exec(select(FocusPeriod)).one().post_ts


async def test_nothing_picked_posts_nothing(bot):
    assert "Pick at least one" in (await command(bot, "focus publish", HOST))["text"]
    await bot.deps.scheduler.run(JOB, datetime(2027, 1, 1, 0, 15, tzinfo=timezone.utc))
    await bot.drain()
    assert bot.fake.calls_to("chat.postMessage") == []


def test_period_is_the_local_calendar_quarter():
    key, start, end = focus.period_for(datetime(2026, 12, 31, 23, 30, tzinfo=timezone.utc), "Europe/Berlin")
    assert key == "2027-Q1" and start.isoformat() == "2027-01-01T00:00:00+01:00" and end.isoformat() == "2027-04-01T00:00:00+02:00"
    assert focus.period_for(datetime(2026, 12, 31, 23, 30, tzinfo=timezone.utc), "America/New_York")[0] == "2026-Q4"


def test_the_job_is_off_without_an_announce_channel(db):
    """``focus.tick`` keeps the announcement up and posts the report: with nowhere to publish it
    is off, and ``platform-feedback jobs`` says why."""
    from types import SimpleNamespace

    from bot.focus.jobs import schedule
    from bot.runtime.scheduler import Scheduler

    def deps(policy: Policy) -> SimpleNamespace:
        return SimpleNamespace(policy=policy, scheduler=Scheduler(), db=db, sender=SimpleNamespace(wake=lambda: None))

    off, on = deps(Policy()), deps(Policy(closing=Closing(announce_channel=ANNOUNCE)))
    schedule(off)
    schedule(on)
    assert JOB not in off.scheduler.jobs and off.scheduler.off[JOB] == "closing.announce_channel is not set in the team policy"
    assert JOB in on.scheduler.jobs and JOB not in on.scheduler.off
