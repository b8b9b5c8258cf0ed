"""Friction insight: scores and trends from hand-built data, loop numbers, the closed-loop rate,
``/platform-feedback top``, duplicate suggestions on the card, and the weekly digest job."""

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, col, select

from bot.insight import service as insight
from bot.insight.digest import JOB
from bot.insight.jobs import digest_trigger, latest_occurrence
from bot.policy import Hosts, Insight, Policy, Triage
from bot.triage import service as triage
from storage.models import ClosureNotice, FrictionPoint, FrictionTag, OutboxMessage, Reporter, ScheduledRun
from storage.privacy import purge_older_than
from tests.slack_requests import USER, block_actions, element_action, interactive, slash_command

HOST, STRANGER, OTHER = "U0HOST0001", "U0STRANGE1", "U0OTHER001"
TRIAGE_CHANNEL, DIGEST_CHANNEL = "C0TRIAGE01", "C0DIGEST01"
NOW = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)  # windows: current from May 31 12:00, previous from May 1 12:00


def at(month: int, day: int, hour: int = 12) -> datetime:
    return datetime(2025, month, day, hour, tzinfo=UTC)


_seq = iter(range(10**9))


def add_point(
    session: Session,
    *,
    created: datetime,
    reporters: list[tuple[str, datetime]] | None = None,
    severity: str = "medium",
    tags: tuple[str, ...] = (),
    minutes: int | None = None,
    status: str = "new",
    first_response: datetime | None = None,
    resolved: datetime | None = None,
    text: str = "something got in the way",
) -> FrictionPoint:
    """A data point as the bot would have stored it, with times of our choosing."""
    point = FrictionPoint(
        team_id="T0TEAM001", filed_by=(reporters or [(USER, created)])[0][0], text=text, severity=severity,
        minutes_lost=minutes, source="command", intake_key=f"test:{next(_seq)}", status=status,
        created_at=created, updated_at=created, first_response_at=first_response, resolved_at=resolved,
    )
    point.reporters = [Reporter(user_id=u, team_id="T0TEAM001", reported_at=when) for u, when in reporters or [(USER, created)]]
    point.tags = [FrictionTag(category=c, automatic=False) for c in tags]
    session.add(point)
    session.flush()
    return point


# ------------------------------------------------------------------ scores and trends


@pytest.fixture
def scored(db) -> dict[str, int]:
    with db.session() as s, s.begin():
        p1 = add_point(s, created=at(6, 20), reporters=[("U1", at(6, 20)), ("U2", at(6, 25))], severity="high", tags=("ci",), minutes=240)
        p2 = add_point(s, created=at(5, 10), reporters=[("U3", at(5, 10)), ("U4", at(6, 5))], tags=("ci", "deploys"), minutes=480, status="acknowledged")
        p3 = add_point(s, created=at(6, 22), reporters=[("U5", at(6, 22))], severity="blocker", tags=("docs",), minutes=120)
        p4 = add_point(s, created=at(6, 1), reporters=[("U1", at(6, 1))], severity="low", tags=("docs",), status="resolved", resolved=at(6, 3))
        add_point(s, created=at(4, 1), reporters=[("U6", at(4, 1))])  # before both windows
        p6 = add_point(s, created=at(5, 5), reporters=[("U7", at(5, 5))], severity="blocker", tags=("access",))
        p7 = add_point(s, created=at(6, 28), reporters=[("U8", at(6, 28))], severity="low")
        # The real merge: p3's reporter joins p1 (keeping when they reported); p3 then counts only through p1.
        triage.merge(session=s, point_id=p3.id, into_id=p1.id, actor=HOST, prefix="FB")
        return {"p1": p1.id, "p2": p2.id, "p3": p3.id, "p4": p4.id, "p6": p6.id, "p7": p7.id}


def test_category_scores_and_trends_have_the_documented_formula(db, scored):
    with db.session() as s:
        result = insight.friction_scores(session=s, days=30, now=NOW)
    by_id = {c.category: c for c in result.categories}
    # ci: p1 = 3 reporters x high 4 + (240 + 120 merged) min / 60 / 8 = 12.75; p2 = 1 x 2 (U4 in June) = 2.
    # Before: p2 = 1 x 2 (U3 in May) + 480 min / 60 / 8 = 3.
    ci = by_id["ci"]
    assert (ci.score, ci.previous, ci.change) == (14.75, 3.0, 11.75)
    assert (ci.points, ci.reporters, ci.hours_lost) == (2, 4, 6.0)
    assert (by_id["deploys"].score, by_id["deploys"].previous) == (2.0, 3.0)
    assert (by_id["docs"].score, by_id["docs"].previous) == (1.0, 0.0)  # p4 only: the merged p3 counts under p1
    assert (by_id["access"].score, by_id["access"].previous) == (0.0, 8.0)  # went quiet
    assert (by_id[insight.UNTAGGED].score, by_id[insight.UNTAGGED].previous) == (1.0, 0.0)
    assert [c.category for c in result.categories] == ["ci", "deploys", "docs", insight.UNTAGGED, "access"]
    assert result.window == insight.Window(NOW - timedelta(days=30), NOW)


def test_open_point_scores_leave_out_closed_merged_and_quiet_points(db, scored):
    with db.session() as s:
        result = insight.friction_scores(session=s, days=30, now=NOW)
    got = [(p.point_id, p.score, p.previous, p.reporters) for p in result.open_points]
    assert got == [(scored["p1"], 12.75, 0.0, 3), (scored["p2"], 2.0, 3.0, 1), (scored["p7"], 1.0, 0.0, 1)]
    assert result.open_points[0].text == "something got in the way" and result.open_points[0].categories == ("ci",)
    # A shorter window sees less: only what happened in the last 7 days (U2 on p1, p7) counts.
    with db.session() as s:
        week = insight.friction_scores(session=s, days=7, now=NOW)
    assert [(p.point_id, p.score) for p in week.open_points] == [(scored["p1"], 4.0), (scored["p7"], 1.0)]


def test_weekly_category_scores_per_week(db, scored):
    with db.session() as s:
        weekly = insight.weekly_category_scores(session=s, weeks=4, now=NOW, top=2)
    assert weekly.weeks == [NOW - timedelta(weeks=4 - i) for i in range(4)]
    # Weeks from Jun 2, 9, 16, 23 (12:00). ci: U4 on p2 (Jun 5) = 2; p1: U1 + 6 h lost (Jun 20) = 4.75, U5 (Jun 22) = 4; U2 (Jun 25) = 4.
    assert weekly.categories == {"ci": [2.0, 0.0, 8.75, 4.0], "deploys": [2.0, 0.0, 0.0, 0.0]}


# ------------------------------------------------------------------ loop health


def test_loop_numbers_medians_and_closed_loop_rate(db):
    with db.session() as s, s.begin():
        # Answered in the window after 2 h, 4 h and 6 h; one resolved after 48 h without a notice.
        add_point(s, created=at(6, 20, 10), first_response=at(6, 20, 12), reporters=[("U1", at(6, 20, 10)), ("U2", at(6, 21))])
        add_point(s, created=at(6, 1, 9), first_response=at(6, 1, 13), resolved=at(6, 3, 9), status="resolved", reporters=[("U1", at(6, 1, 9))])
        add_point(s, created=at(6, 22, 6), first_response=at(6, 22, 12), reporters=[("U3", at(6, 22, 6))])
        # Resolved after 24 h; both reporters heard it was fixed: the loop is closed.
        both = add_point(s, created=at(6, 10, 0), resolved=at(6, 11, 0), status="resolved", reporters=[("U4", at(6, 10, 0)), ("U5", at(6, 10, 1))])
        # Resolved after 12 h; only one of two reporters heard: not closed.
        half = add_point(s, created=at(6, 12, 0), resolved=at(6, 12, 12), status="resolved", reporters=[("U6", at(6, 12, 0)), ("U7", at(6, 12, 1))])
        # Resolved after 72 h; its one reporter came from a merged duplicate and the notice names the duplicate.
        canon = add_point(s, created=at(6, 4, 0), resolved=at(6, 7, 0), status="resolved", reporters=[("U8", at(6, 5, 0))])
        dup = add_point(s, created=at(6, 5, 0), status="duplicate", reporters=[("U8", at(6, 5, 0))])
        dup.duplicate_of_id = canon.id
        # Declined (won't fix) with a notice: not "resolved", so not in the rate; in the resolution median (96 h).
        declined = add_point(s, created=at(6, 14, 0), resolved=at(6, 18, 0), status="wont_fix", reporters=[("U9", at(6, 14, 0))])
        # The window before: one report, one reporter, answered after 1 h.
        add_point(s, created=at(5, 20, 0), first_response=at(5, 20, 1), reporters=[("U1", at(5, 20, 0))])
        for point_id, user in [(both.id, "U4"), (both.id, "U5"), (half.id, "U6"), (dup.id, "U8"), (declined.id, "U9")]:
            s.add(ClosureNotice(friction_point_id=point_id, user_id=user, tracker="github", key=f"acme/x#{point_id}", closure=1, outcome="fixed"))
    with db.session() as s:
        health = insight.loop_health(session=s, days=30, now=NOW, weeks=5)
    now, before = health.current, health.previous
    assert (now.reports, now.active_reporters) == (8, 9)  # U1..U9
    assert now.reports_per_week == pytest.approx(8 * 7 / 30)
    assert now.median_first_response == timedelta(hours=4)
    assert now.median_resolution == timedelta(hours=48)  # of 12, 24, 48, 72, 96
    assert (now.resolved, now.closed_loop, now.closed_loop_rate) == (4, 2, 0.5)
    assert (before.reports, before.active_reporters, before.median_first_response) == (1, 1, timedelta(hours=1))
    assert (before.resolved, before.closed_loop_rate, before.median_resolution) == (0, None, None)
    # Weeks from May 26, Jun 2, 9, 16, 23 (12:00).
    assert [(w.reports, w.active_reporters) for w in health.weeks] == [(1, 1), (2, 1), (3, 5), (2, 3), (0, 0)]
    assert health.nps == []  # the surveys hook, empty until surveys exist


# ------------------------------------------------------------------ duplicates (no Slack)


def test_similarity_ignores_common_words():
    score = lambda a, b: insight.fuzz.token_set_ratio(a, b, processor=insight.similarity_text)  # noqa: E731
    assert score("the build is slow", "the vpn is slow") < 70
    assert score("CI pipeline is flaky on main", "the ci pipeline is flaky again on main branch") >= 90


def test_possible_duplicate_is_the_most_similar_older_open_report(db):
    with db.session() as s, s.begin():
        old = add_point(s, created=at(6, 1), text="the ci pipeline is flaky on main")
        closed = add_point(s, created=at(6, 2), text="ci pipeline is flaky on main", status="resolved", resolved=at(6, 3))
        other = add_point(s, created=at(6, 3), text="vpn keeps dropping every hour")
        new = add_point(s, created=at(6, 10), text="CI pipeline flaky on main again today")
        later = add_point(s, created=at(6, 11), text="the ci pipeline is flaky on main!")
        # Filed in the same instant: the lower id is the older, as triage.merge decides it.
        twin_a = add_point(s, created=at(6, 12), text="terraform state lock is stuck")
        twin_b = add_point(s, created=at(6, 12), text="terraform state lock stuck again")
    with db.session() as s:
        found = insight.possible_duplicate(session=s, point=s.get(FrictionPoint, new.id), threshold=70)
        assert (found.point_id, found.text) == (old.id, "the ci pipeline is flaky on main")  # not the resolved one, not the later one
        assert 70 <= found.similarity <= 100
        assert insight.possible_duplicate(session=s, point=s.get(FrictionPoint, other.id), threshold=70) is None
        assert insight.possible_duplicate(session=s, point=s.get(FrictionPoint, new.id), threshold=0) is None  # off
        assert insight.possible_duplicate(session=s, point=s.get(FrictionPoint, closed.id), threshold=70) is None
        assert insight.possible_duplicate(session=s, point=s.get(FrictionPoint, later.id), threshold=70).point_id == old.id  # the closest
        assert insight.possible_duplicate(session=s, point=s.get(FrictionPoint, twin_b.id), threshold=70).point_id == twin_a.id
        assert insight.possible_duplicate(session=s, point=s.get(FrictionPoint, twin_a.id), threshold=70) is None


def test_the_card_keeps_its_duplicate_suggestion_until_it_no_longer_holds(db, monkeypatch):
    with db.session() as s, s.begin():
        old = add_point(s, created=at(6, 1), text="the ci pipeline is flaky on main")
        close = add_point(s, created=at(6, 2), text="the ci pipeline is flaky on main branch")
        new = add_point(s, created=at(6, 10), text="CI pipeline flaky on main branch again today")
        lone = add_point(s, created=at(6, 11), text="terraform state lock is stuck")

    def card(point_id: int, threshold: int = 70):
        return db.transact(lambda session: insight.card_duplicate(session=session, point=session.get(FrictionPoint, point_id), threshold=threshold))

    def computed(point_id: int, threshold: int = 70):
        return db.transact(lambda session: insight.possible_duplicate(session=session, point=session.get(FrictionPoint, point_id), threshold=threshold))

    first = card(new.id)
    assert first == computed(new.id) and first.point_id == close.id  # the same answer as computing it
    assert card(lone.id) is None
    with db.session() as s:
        kept = s.get(FrictionPoint, new.id)
        assert (kept.suggested_duplicate_id, round(kept.suggested_similarity)) == (close.id, first.similarity)
        assert s.get(FrictionPoint, lone.id).suggested_similarity < 70  # kept below the threshold too

    def no_comparing(*args):
        raise AssertionError("compared again")

    with monkeypatch.context() as patched:  # a redraw: no comparing with other reports
        patched.setattr(insight, "_most_similar", no_comparing)
        assert card(new.id) == first and card(lone.id) is None
        assert card(new.id, threshold=0) is None  # off
        assert card(new.id, threshold=first.similarity + 1) is None  # a stricter threshold applies at once
    # The suggested report resolved, then purged: the next most similar open one is offered, as computing it says.
    with db.session() as s, s.begin():
        s.get(FrictionPoint, close.id).status = "resolved"
    assert card(new.id) == computed(new.id) and card(new.id).point_id == old.id
    with db.session() as s, s.begin():
        s.get(FrictionPoint, new.id).suggested_duplicate_id = close.id  # as kept before it closed
        assert purge_older_than(session=s, cutoff=at(6, 3)) == 1
    assert card(new.id).point_id == old.id
    # Its own words changed: compared again (nothing resembles them now).
    with db.session() as s, s.begin():
        s.get(FrictionPoint, new.id).text = "the vpn drops every hour"
    with db.session() as s:
        assert s.get(FrictionPoint, new.id).suggested_similarity is None  # forgotten with the change
    assert card(new.id) is None and computed(new.id) is None
    # The suggested report's words changed: their similarity is not the one kept, so compared again.
    with db.session() as s, s.begin():
        s.get(FrictionPoint, new.id).text = "the ci pipeline is flaky on main, again"
    assert card(new.id).point_id == old.id
    with db.session() as s, s.begin():
        s.get(FrictionPoint, old.id).text = "the ci pipeline is flaky on main sometimes"
    assert card(new.id) == computed(new.id)
    # Merged away: no suggestion left pointing at it.
    with db.session() as s, s.begin():
        s.get(FrictionPoint, old.id).status, s.get(FrictionPoint, old.id).duplicate_of_id = "duplicate", lone.id
    assert card(new.id) is None and computed(new.id) is None


# ------------------------------------------------------------------ Slack: top, the card, the digest


@pytest.fixture
def policy() -> Policy:
    return Policy(hosts=Hosts(users=[HOST]), triage=Triage(channel=TRIAGE_CHANNEL), insight=Insight(digest_channel=DIGEST_CHANNEL))


async def file(bot, text: str, user: str = USER) -> int:
    await bot.post(*slash_command(text, fake_url=bot.fake.url, user=user))
    await bot.drain()
    with bot.db.session() as s:
        return s.exec(select(FrictionPoint.id).order_by(FrictionPoint.id.desc())).first()


async def command(bot, text: str, user: str) -> dict:
    resp = await bot.post(*slash_command(text, fake_url=bot.fake.url, user=user))
    assert resp.status_code == 200
    await bot.drain()
    return bot.fake.calls_to("response_url")[-1].body


async def test_top_command_shows_areas_trends_and_loop_numbers(bot):
    await file(bot, "the ci pipeline is flaky on main")
    await file(bot, "ci runners are always slow", user=OTHER)
    await file(bot, "vpn login fails every morning")
    body = await command(bot, "top", user=HOST)
    assert body["response_type"] == "ephemeral"
    shown = json.dumps(body["blocks"])
    assert "Top friction, last 30 days" in shown
    # Two medium CI reports (2 each), one Access: CI leads, both new this window.
    assert "1. *CI*: 4.0 (new)" in shown and "2. *Access*: 2.0 (new)" in shown
    assert "Reports per week" in shown and "Closed-loop rate" in shown
    assert "Top open reports" in shown and "vpn login fails every morning" in shown  # hosts see the reports
    stranger = json.dumps((await command(bot, "top", user=STRANGER))["blocks"])
    assert "1. *CI*: 4.0" in stranger and "vpn login fails" not in stranger  # others see only the numbers
    assert "Top friction, last 7 days" in json.dumps((await command(bot, "top 7", user=HOST))["blocks"])
    assert "Usage" in (await command(bot, "top yesterday", user=HOST))["text"]
    with bot.db.session() as s:
        assert len(s.exec(select(FrictionPoint)).all()) == 3  # "top" files nothing


def card_of(bot, point_id: int) -> dict:
    calls = [c.body for c in bot.fake.calls if c.method in ("chat.postMessage", "chat.update")
             and c.body.get("channel") == TRIAGE_CHANNEL and f"FB-{point_id}:" in c.body.get("text", "")]
    return calls[-1]


def suggestion(card: dict) -> dict | None:
    return next((b for b in card["blocks"] if b.get("block_id", "").endswith(":duplicate")), None)


async def click_merge(bot, point_id: int, user: str) -> None:
    block = suggestion(card_of(bot, point_id))
    payload = block_actions([element_action(block["accessory"])], block_id=block["block_id"], user=user,
                            response_url=f"{bot.fake.url}/response_url/merge-{user}", channel=TRIAGE_CHANNEL)
    assert (await bot.post(*interactive(payload))).status_code == 200
    await bot.drain()


async def test_a_similar_report_offers_a_one_click_merge_for_hosts_only(bot):
    first = await file(bot, "the ci pipeline is flaky on main")
    unrelated = await file(bot, "vpn keeps dropping every hour", user=OTHER)
    second = await file(bot, "CI pipeline flaky on main again today", user=OTHER)
    assert suggestion(card_of(bot, first)) is None and suggestion(card_of(bot, unrelated)) is None
    block = suggestion(card_of(bot, second))
    assert f"Possible duplicate of *FB-{first}*" in block["text"]["text"] and "the ci pipeline is flaky on main" in block["text"]["text"]
    assert block["accessory"]["text"]["text"] == f"Merge into FB-{first}"
    # Not a host: refused, nothing changes.
    await click_merge(bot, second, STRANGER)
    assert "Only office-hours hosts" in bot.fake.calls_to("response_url")[-1].body["text"]
    with bot.db.session() as s:
        assert s.get(FrictionPoint, second).duplicate_of_id is None
    # A host: merged through the same path as the card's other actions.
    await click_merge(bot, second, HOST)
    with bot.db.session() as s:
        merged, kept = s.get(FrictionPoint, second), s.get(FrictionPoint, first)
        assert (merged.duplicate_of_id, merged.status) == (first, "duplicate")
        assert {r.user_id for r in kept.reporters} == {USER, OTHER}
        assert [c.action for c in triage.history(session=s, point_id=second)] == ["filed", "merged"]
    assert card_of(bot, second)["text"] == f"FB-{second}: merged into FB-{first}"  # updated in place, no button left
    assert suggestion(card_of(bot, second)) is None


def test_digest_occurrence_follows_the_configured_local_time():
    trigger = digest_trigger(Insight(digest_channel=DIGEST_CHANNEL, digest_weekday="mon", digest_time="09:00", timezone="Europe/Berlin"))
    assert latest_occurrence(trigger, datetime(2025, 3, 26, 12, tzinfo=UTC)) == datetime(2025, 3, 24, 8, tzinfo=UTC)  # CET
    assert latest_occurrence(trigger, datetime(2025, 3, 31, 7, 30, tzinfo=UTC)) == datetime(2025, 3, 31, 7, tzinfo=UTC)  # CEST
    assert latest_occurrence(trigger, datetime(2025, 3, 31, 6, 59, 30, tzinfo=UTC)) == datetime(2025, 3, 31, 7, tzinfo=UTC)  # a firing a little early


async def test_weekly_digest_posts_once_with_its_chart(bot):
    assert JOB in bot.deps.scheduler.jobs
    occurrence = datetime.now(UTC).replace(microsecond=0)
    with bot.db.session() as s, s.begin():
        add_point(s, created=occurrence - timedelta(days=2), severity="high", tags=("ci",), minutes=480, reporters=[("U1", occurrence - timedelta(days=2))])
        add_point(s, created=occurrence - timedelta(days=40), tags=("docs",))
    assert await bot.deps.scheduler.run(JOB, occurrence) is True
    await bot.drain()
    [post] = [c.body for c in bot.fake.calls_to("chat.postMessage") if c.body["channel"] == DIGEST_CHANNEL]
    shown = json.dumps(post["blocks"])
    assert "Weekly friction digest" in shown and "1. *CI*: 5.0 (new)" in shown and "Closed-loop rate" in shown
    [url] = bot.fake.calls_to("files.getUploadURLExternal")
    assert url.body["filename"].endswith(".png")
    [upload] = bot.fake.calls_to("upload")
    assert bot.fake.uploads[upload.body["file_id"]].startswith(b"\x89PNG")
    [complete] = bot.fake.calls_to("files.completeUploadExternal")
    assert complete.body["channel_id"] == DIGEST_CHANNEL and "Top areas" in complete.body["initial_comment"]
    # The same occurrence again (another instance, a retry): nothing more is queued or sent.
    calls = len(bot.fake.calls)
    assert await bot.deps.scheduler.run(JOB, occurrence) is False
    await bot.drain()
    assert len(bot.fake.calls) == calls
    with bot.db.session() as s:
        assert len(s.exec(select(OutboxMessage).where(col(OutboxMessage.dedupe_key).startswith(JOB))).all()) == 2
        assert len(s.exec(select(ScheduledRun).where(ScheduledRun.job == JOB)).all()) == 1


def test_the_chart_goes_through_the_outbox_as_a_base64_png(db):
    from bot.insight.digest import queue_digest

    policy = Policy(insight=Insight(digest_channel=DIGEST_CHANNEL))
    with db.session() as s, s.begin():
        add_point(s, created=NOW - timedelta(days=1), tags=("ci",))
        queue_digest(session=s, occurrence=NOW, policy=policy)
    with db.session() as s:
        [chart] = s.exec(select(OutboxMessage).where(OutboxMessage.method == "files.uploadV2")).all()
    payload = json.loads(chart.payload)
    assert set(payload) == {"channel", "filename", "title", "initial_comment", "content_b64"}
    assert payload["channel"] == DIGEST_CHANNEL and base64.b64decode(payload["content_b64"]).startswith(b"\x89PNG")


def test_no_digest_job_without_a_channel_and_a_bad_zone_is_refused(fake_slack, db, tmp_path):
    from bot.runtime.app import create_app
    from bot.runtime.config import load_policy
    from bot.runtime.settings import ConfigError
    from tests.conftest import make_settings

    _app, deps = create_app(make_settings(fake_slack, db), Policy(), db)
    assert JOB not in deps.scheduler.jobs and "top" in deps.commands
    assert deps.scheduler.off[JOB] == "insight.digest_channel is not set in the team policy"  # `jobs` says why
    (tmp_path / "policy.yml").write_text("insight:\n  digest_channel: C0DIGEST01\n  timezone: Mars/Olympus\n")
    with pytest.raises(ConfigError, match="insight.timezone: unknown time zone"):
        load_policy(tmp_path / "policy.yml")
