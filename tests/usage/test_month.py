"""A month of usage on a frozen clock (issue #29's acceptance): a fake CI sends signed usage events
over real HTTP (uvicorn on a free port, the serve app), two capabilities, twenty people. Checked
against an oracle written from the plan, independently of the SQL: weekly and 4-weekly active users,
new and returning users, the audience share, time to first use and failure rate; moment-of-use DMs
sampled within the per-person cap, never to someone in an open pulse survey, and held past quiet
hours in each person's time zone; a window whose answers reach the minimum group shows a score,
one under it shows none and keeps no answer.

The simulated month sits before the real clock (signatures carry the real time; event times are
the month's), so ``at`` is never "in the future" and never over 400 days old, whenever this runs.
"""

import asyncio
import contextlib
import json
from datetime import datetime, time, timedelta, timezone
from statistics import median
from zoneinfo import ZoneInfo

import httpx
import uvicorn
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import delete, func
from sqlmodel import select

from bot.runtime.app import create_app, create_web_app
from bot.runtime.http_limits import uvicorn_options
from bot.surveys.sealing import Keys
from bot.usage import adoption, jobs
from bot.usage.slack_reads import settler_for
from bot.usage.weeks import week_start
from storage.models import RunStatus, SurveyRecipient, SurveyRun, UsageAnswer, UsageAsk, UsageEvent, UsageWindow
from tests.conftest import make_settings
from tests.fake_slack import TOKEN
from tests.runtime.test_serve_http import free_port
from tests.slack_requests import block_actions, element_action, interactive
from tests.usage.helpers import signed_event, usage_policy
from tests.waiting import until

PEOPLE = [f"U0DEV{i:02d}" for i in range(1, 21)]
ZONES = {u: ("Europe/Berlin" if i % 2 else "America/New_York") for i, u in enumerate(PEOPLE, 1)}
IN_A_SURVEY = "U0DEV02"  # a pulse survey of theirs is open all month: never asked
AUDIENCE = PEOPLE[:10]
WEEKS = 4


def month_start() -> datetime:
    """A Monday about two months before the real clock."""
    return week_start(datetime.now(timezone.utc) - timedelta(days=70))


def plan(start: datetime) -> list[dict]:
    """The month's events, in time order. Person i: their first event is a new-service on day
    (i-1) % 14; persons 1-16 deploy from day (i-1) % 14 + i % 5 on, every third day (every fourth
    deploy fails); person 1's first deploy is at 20:30 UTC (21:30 in Berlin: quiet hours)."""
    events = []
    for i, user in enumerate(PEOPLE, 1):
        first = (i - 1) % 14
        events.append({"id": f"ns-{user}", "capability": "new-service", "user": user,
                       "at": start + timedelta(days=first, hours=10)})
        if i <= 16:
            day, n = first + i % 5, 0
            while day < 7 * WEEKS:
                hour = timedelta(hours=20, minutes=30) if (i == 1 and n == 0) else timedelta(hours=14)
                events.append({"id": f"dep-{user}-{n}", "capability": "deploy", "user": user, "at": start + timedelta(days=day) + hour,
                               "outcome": "failed" if n % 4 == 3 else "ok"})
                day, n = day + 3, n + 1
    return sorted(events, key=lambda e: e["at"])


# ------------------------------------------------------------------ the oracle


def expected_weeks(events: list[dict], capability: str, start: datetime) -> list[dict]:
    weeks = [start + timedelta(weeks=w) for w in range(WEEKS + 1)]

    def week_of(at):
        return next(w for w in range(WEEKS) if weeks[w] <= at < weeks[w + 1])

    first_any: dict[str, datetime] = {}
    first_cap: dict[str, datetime] = {}
    for e in events:
        first_any.setdefault(e["user"], e["at"])
        if e["capability"] == capability:
            first_cap.setdefault(e["user"], e["at"])
    out = []
    for w in range(WEEKS):
        mine = [e for e in events if e["capability"] == capability and week_of(e["at"]) == w]
        active = {e["user"] for e in mine}
        rolling = {e["user"] for e in events if e["capability"] == capability and max(0, w - 3) <= week_of(e["at"]) <= w}
        new = {u for u, at in first_cap.items() if week_of(at) == w}
        ttf = [(first_cap[u] - first_any[u]) for u in new]
        out.append({"active": len(active), "active_4w": len(rolling), "new": len(new), "returning": len(active - new),
                    "uses": len(mine), "failed": sum(1 for e in mine if e.get("outcome") == "failed"),
                    "share": len(active & set(AUDIENCE)) / len(AUDIENCE),
                    "ttf": median(ttf) if ttf else None})
    return out


def after_quiet(at: datetime, tz: str) -> datetime:
    local = at.astimezone(ZoneInfo(tz))
    if time(9) <= local.time() < time(19):
        return at
    day = local.date() if local.time() < time(9) else local.date() + timedelta(days=1)
    return datetime.combine(day, time(9), tzinfo=ZoneInfo(tz)).astimezone(timezone.utc)


def expected_asks(events: list[dict]) -> dict[str, list[tuple[datetime, datetime]]]:
    """Per person: (asked at, delivered at) of each question: every deploy is sampled (sample_every
    1), at most one per 14 days, none for the person in a survey."""
    asks: dict[str, list[tuple[datetime, datetime]]] = {}
    for e in events:
        if e["capability"] != "deploy" or e["user"] == IN_A_SURVEY:
            continue
        mine = asks.setdefault(e["user"], [])
        if not mine or e["at"] - mine[-1][0] >= timedelta(days=14):
            mine.append((e["at"], after_quiet(e["at"], ZONES[e["user"]])))
    return asks


# ------------------------------------------------------------------ the served bot


@contextlib.asynccontextmanager
async def served(web, settings):
    """The serve app on a free port of 127.0.0.1 (uvicorn in this process, with serve's HTTP limits)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(web, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                                           **uvicorn_options(settings)))
    task = asyncio.create_task(server.serve())
    await until(lambda: server.started or task.done(), what="uvicorn started")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            yield http
    finally:
        server.should_exit = True
        await task


async def test_a_month_of_usage(fake_slack, db):
    start = month_start()
    end = start + timedelta(weeks=WEEKS)
    events = plan(start)
    policy = usage_policy()
    for user in PEOPLE:
        fake_slack.users[user] = {"tz": ZONES[user]}
    fake_slack.usergroups["S0DEVS"] = AUDIENCE
    settings = make_settings(fake_slack, db, usage_signing_secret="usage-secret-for-tests-0123456789")
    app, deps = create_app(settings, policy, db, client=AsyncWebClient(token=TOKEN, base_url=settings.slack_api_url))
    clock = [start]
    deps.once(settler_for).clock = lambda: clock[0]
    with db.session() as s:  # U0DEV02's pulse survey stays open all month
        run = SurveyRun(survey="pulse", occurrence=start - timedelta(days=1), definition="{}", status=RunStatus.open,
                        closes_at=end + timedelta(days=60))
        s.add(run)
        s.flush()
        s.add(SurveyRecipient(run_id=run.id, user_id=IN_A_SURVEY, tz="UTC", deliver_at=start))
        s.commit()
    keys = Keys.from_settings(settings)

    async with served(create_web_app(app, deps, run_background=False), settings) as http:
        for e in events:  # the fake CI: each use as it happens
            clock[0] = e["at"]
            body, headers = signed_event({**e, "at": e["at"].isoformat()})
            r = await http.post("/events/usage", content=body, headers=headers)
            assert r.status_code == 202, r.text
            await deps.once(settler_for).idle()

        # ---------------------------------------------------------- refused, nothing stored
        with db.session() as s:
            count = s.scalar(select(func.count()).select_from(UsageEvent))
        assert events[0]["capability"] == "new-service"  # no question follows it: deleting it below leaves nothing behind
        body, headers = signed_event({**events[0], "id": "forged", "at": events[0]["at"].isoformat()})
        forged = await http.post("/events/usage", content=body, headers={**headers, "x-usage-signature": "v1=" + "ab" * 32})
        replay = await http.post("/events/usage", content=body, headers=headers)
        replayed = await http.post("/events/usage", content=body, headers=headers)
        other_body, other_headers = signed_event({"id": "teleport-1", "capability": "teleport", "user": PEOPLE[0]})
        unknown = await http.post("/events/usage", content=other_body, headers=other_headers)
        assert (forged.status_code, replay.status_code, replayed.status_code, unknown.status_code) == (401, 202, 409, 400)
        with db.session() as s:  # only the one signed, new event went in (and it is dropped again for the counts)
            assert s.scalar(select(func.count()).select_from(UsageEvent)) == count + 1
            s.execute(delete(UsageEvent).where(UsageEvent.key == "forged"))
            s.commit()
        await deps.once(settler_for).idle()

        # ---------------------------------------------------------- the questions
        with db.session() as s:
            asks = s.scalars(select(UsageAsk).order_by(UsageAsk.id)).all()
            assert s.scalar(select(UsageEvent.id).where(UsageEvent.settled.is_(False))) is None
        got: dict[str, list[tuple[datetime, datetime]]] = {}
        for a in asks:
            got.setdefault(a.user_id, []).append((a.asked_at, a.deliver_at))
        assert got == expected_asks(events)
        assert IN_A_SURVEY not in got
        # U0DEV01's first deploy was at 21:30 in Berlin: the DM waits until 09:00 there.
        first = got["U0DEV01"][0]
        assert first[1].astimezone(ZoneInfo("Europe/Berlin")).time() == time(9) and first[1] > first[0]
        for user, mine in got.items():
            assert all(b[0] - a[0] >= timedelta(days=14) for a, b in zip(mine, mine[1:], strict=False)), user
            for _, deliver in mine:
                assert time(9) <= deliver.astimezone(ZoneInfo(ZONES[user])).time() < time(19), user

        while await deps.sender.drain_once():  # the DMs (due: the month is in the past)
            pass
        dms = [c for c in fake_slack.calls_to("chat.postMessage") if c.body.get("channel") in PEOPLE]
        assert sorted(c.body["channel"] for c in dms) == sorted(a.user_id for a in asks)
        assert all("How was Deploy just now?" in json.dumps(c.body.get("blocks")) for c in dms)

        # ---------------------------------------------------------- answers
        by_window: dict[int, list[UsageAsk]] = {}
        for a in asks:
            by_window.setdefault(a.window_id, []).append(a)
        ranked = sorted(by_window.items(), key=lambda kv: -len(kv[1]))
        big, small = ranked[0], next((w for w in ranked[1:] if len(w[1]) >= 3), None)
        assert len(big[1]) >= 5 and small is not None, {k: len(v) for k, v in by_window.items()}

        async def press(a: UsageAsk, score: int):
            dm = next(c.body for c in dms if c.body["channel"] == a.user_id and f'"{a.id}|{score}"' in json.dumps(c.body["blocks"]))
            block = next(b for b in dm["blocks"] if b["type"] == "actions")
            button = next(e for e in block["elements"] if e.get("value") == f"{a.id}|{score}")
            body, headers = interactive(block_actions([element_action(button)], block_id=block["block_id"], user=a.user_id,
                                                      response_url=f"{fake_slack.url}/response_url/{a.id}", channel="D" + a.user_id[1:]))
            r = await http.post("/slack/events", content=body.encode(), headers=headers)
            assert r.status_code == 200

        for a, score in zip(big[1][:5], [1, 2, 3, 4, 5], strict=True):
            await press(a, score)
        for a in small[1][:3]:
            await press(a, 4)
        await until(lambda: len(fake_slack.calls_to("response_url")) >= 8, what="the 8 answers' DMs updated")
        with db.session() as s:  # answering wrote no row that names anyone: only sealed slots
            assert s.scalars(select(UsageAnswer)).all() == []

        # ---------------------------------------------------------- the month measured
        await jobs.tick(deps, keys, adoption.AudienceRefresh(db=db, policy=policy, read=deps.once(settler_for).read),
                        now=end + timedelta(days=30))
        with db.session() as s:
            windows = {w.id: w for w in s.scalars(select(UsageWindow)).all()}
            assert all(w.status == "closed" and w.secret is None for w in windows.values())
            assert windows[big[0]].answers == 5 and windows[small[0]].answers == 3
            kept = s.scalars(select(UsageAnswer)).all()
            assert sorted(a.score for a in kept) == [1, 2, 3, 4, 5] and {a.window_id for a in kept} == {big[0]}
            measured = adoption.measure(session=s, policy=policy, now=end - timedelta(hours=1), weeks=WEEKS)

    assert measured.weeks == [start + timedelta(weeks=w) for w in range(WEEKS)]
    assert measured.audience == len(AUDIENCE)
    for cap in measured.capabilities:
        want = expected_weeks(events, cap.name, start)
        got_weeks = [{"active": w.active, "active_4w": w.active_4w, "new": w.new, "returning": w.returning, "uses": w.uses,
                      "failed": w.failed, "share": w.share, "ttf": w.time_to_first_use} for w in cap.weeks]
        assert got_weeks == want, cap.name
    deploy = next(c for c in measured.capabilities if c.name == "deploy")
    assert deploy.csat.scored == (1, 2, 3, 4, 5) and deploy.csat.average == 3.0
    assert deploy.csat.answers == 8 and deploy.csat.hidden_windows == len(windows) - 1
    # The same, worked out by hand from the plan. New-service: first day (i-1) % 14, so persons 1-7
    # and 15-20 start in week 1, 8-14 in week 2. Deploy: first day (i-1) % 14 + i % 5: persons 1, 2,
    # 3, 5, 6, 15, 16 in week 1; 4, 7-12 in week 2; 13 (day 15) and 14 (day 17) in week 3, whose
    # times to first deploy are 3 d 4 h and 4 d 4 h from their new-service at 10:00: median 3 d 16 h.
    new_service = next(c for c in measured.capabilities if c.name == "new-service")
    assert [w.new for w in new_service.weeks] == [13, 7, 0, 0]
    assert [w.new for w in deploy.weeks] == [7, 7, 2, 0]
    assert deploy.weeks[2].time_to_first_use == timedelta(days=3, hours=16)
    assert [w.active for w in deploy.weeks] == [7, 14, 16, 16] and [w.returning for w in deploy.weeks] == [0, 7, 14, 16]
