"""Progress to reporters (issue #28), through the real app: tracker deliveries in each tracker's
documented format (signed as each signs) say work started, and every reporter of the linked
report, merged duplicates included, gets one DM per issue however often it is said; relayed
updates (a marked tracker comment, a host's command) reach each reporter in at most one DM per
report a day, from the daily job; the stage on the card moves to "in progress"."""

import json
from datetime import datetime, timezone

import pytest
from sqlmodel import select

from bot.issue_create.policy import IssuePolicy, Progress
from bot.policy import Hosts, Policy, Triage
from bot.progress.jobs import JOB
from bot.progress.stage import Stage, stage_of, started_points
from bot.triage import service as triage
from storage.models import FrictionPoint, ProgressNotice
from tests import tracker_requests as tr
from tests.slack_requests import USER, slash_command

HOST, OTHER, THIRD = "U0HOST0001", "U0OTHER001", "U0THIRD001"
TRIAGE = "C0TRIAGE01"
MARKER = "/notify-reporters"


@pytest.fixture
def progress() -> Progress:
    return Progress()


@pytest.fixture
def policy(progress) -> Policy:
    return Policy(hosts=Hosts(users=[HOST]), triage=Triage(channel=TRIAGE), issues=IssuePolicy(progress=progress))


@pytest.fixture
def settings_overrides() -> dict:
    return tr.SETTINGS


async def run(bot, text: str, user: str) -> None:
    await bot.post(*slash_command(text, fake_url=bot.fake.url, user=user))
    await bot.drain()


async def file(bot, text: str, user: str = USER) -> int:
    await run(bot, text, user)
    with bot.db.session() as s:
        return s.exec(select(FrictionPoint.id).order_by(FrictionPoint.id.desc())).first()


async def linked_with_duplicate(bot, url: str) -> int:
    """FB-1 by USER with FB-2 (OTHER) merged into it, FB-1 linked to ``url``."""
    first = await file(bot, "staging deploys hang")
    second = await file(bot, "deploys stuck on staging", user=OTHER)
    with bot.db.session() as s, s.begin():
        triage.merge(session=s, point_id=second, into_id=first, actor=HOST, prefix="FB")
    await run(bot, f"link FB-{first} {url}", HOST)
    return first


async def deliver(bot, route: str, body: bytes, headers: dict) -> None:
    resp = await bot.http.post(f"/webhooks/{route}", content=body, headers=headers)
    assert resp.status_code == 200, resp.text
    await bot.drain()


def started_dms(bot, user: str) -> list[dict]:
    return [c.body for c in bot.fake.calls_to("chat.postMessage")
            if c.body["channel"] == user and any(b.get("block_id") == "progress_started" for b in c.body.get("blocks", []))]


def update_dms(bot, user: str) -> list[dict]:
    return [c.body for c in bot.fake.calls_to("chat.postMessage")
            if c.body["channel"] == user and any(b.get("block_id") == "progress_updates" for b in c.body.get("blocks", []))]


# ------------------------------------------------------------------ documented start events


def github_assigned() -> tuple[str, bytes, dict]:
    payload = tr.github_issue("acme/platform", 42, action="assigned")
    payload["assignee"] = {"login": "octocat", "id": 1}
    payload["issue"]["assignees"] = [payload["assignee"]]
    return "github", *tr.github("issues", payload)


def github_pr_opened() -> tuple[str, bytes, dict]:
    payload = tr.github_issue("acme/platform", 77, action="opened")
    issue = payload.pop("issue")
    payload["number"] = 77
    payload["pull_request"] = {"url": "https://api.github.com/repos/acme/platform/pulls/77", "id": 987654,
                               "html_url": "https://github.com/acme/platform/pull/77", "number": 77, "state": "open",
                               "title": "Speed up staging deploys", "body": "Works on #42 (see the thread).",
                               "created_at": issue["updated_at"], "updated_at": issue["updated_at"], "merged": False,
                               "base": {"ref": "main"}, "head": {"ref": "speedup"}}
    return "github", *tr.github("pull_request", payload)


def gitlab_assigned() -> tuple[str, bytes, dict]:
    body, _ = tr.gitlab("acme/runners", 9, "reopen")
    payload = json.loads(body)
    payload["object_attributes"].update(action="update", state="opened")
    payload["changes"] = {"assignees": {"previous": [], "current": [{"id": 1, "name": "Host", "username": "host"}]}}
    return "gitlab", *tr.gitlab_signed(payload)


def jira_in_progress() -> tuple[str, bytes, dict]:
    body, _ = tr.jira("NET-7", None, changelog=[{"field": "status", "fieldtype": "jira", "from": "10000", "fromString": "To Do",
                                                  "to": "3", "toString": "In Progress"}])
    payload = json.loads(body)
    payload["issue"]["fields"]["status"] = {"name": "In Progress", "statusCategory": {"key": "indeterminate", "name": "In Progress"}}
    return "jira", *tr.jira_signed(payload)


def linear_started() -> tuple[str, bytes, dict]:
    return "linear", *tr.linear("DOC-3", "started", {"stateId": "state-1", "updatedAt": "2026-11-24T09:00:00.000Z"},
                                issue_id="2174add1-f7c8-44e3-bbf3-2d60b5ea8bc9")


STARTS = {
    "github-assigned": ("https://github.com/acme/platform/issues/42", github_assigned),
    "github-pr-opened": ("https://github.com/acme/platform/issues/42", github_pr_opened),
    "gitlab-assigned": ("https://gitlab.com/acme/runners/-/issues/9", gitlab_assigned),
    "jira-in-progress": ("https://acme.atlassian.net/browse/NET-7", jira_in_progress),
    "linear-started": ("https://linear.app/acme/issue/DOC-3/docs-search", linear_started),
}


@pytest.mark.parametrize("case", list(STARTS))
async def test_a_start_event_dms_each_reporter_once_and_replays_send_nothing(bot, case):
    url, make = STARTS[case]
    point_id = await linked_with_duplicate(bot, url)
    event = make()
    await deliver(bot, *event)
    for user in (USER, OTHER):
        [dm] = started_dms(bot, user)
        assert "The platform team started on FB-" in dm["text"]
    assert "FB-1" in started_dms(bot, USER)[0]["text"] and "FB-2" in started_dms(bot, OTHER)[0]["text"]  # each their own report
    await deliver(bot, *event)  # the same delivery again
    await deliver(bot, *make())  # a later start event (reassigned, another pull request)
    assert len(started_dms(bot, USER)) == 1 and len(started_dms(bot, OTHER)) == 1
    assert not started_dms(bot, HOST)
    with bot.db.session() as s:
        point = s.get(FrictionPoint, point_id)
        assert stage_of(point, point_id in started_points(session=s, point_ids=[point_id])) == Stage.in_progress
        assert len(s.exec(select(ProgressNotice)).all()) == 2
    card = [c.body for c in bot.fake.calls_to("chat.update") if c.body.get("channel") == TRIAGE][-1]
    assert "*in progress*" in json.dumps(card)


async def test_a_closed_issue_does_not_start(bot):
    await linked_with_duplicate(bot, "https://github.com/acme/platform/issues/42")
    await deliver(bot, "github", *tr.github("issues", tr.github_issue("acme/platform", 42)))
    await deliver(bot, *github_assigned())
    assert not started_dms(bot, USER)


@pytest.mark.parametrize("progress", [Progress(start_notices=False)])
async def test_start_notices_turned_off_send_nothing_but_the_stage_moves(bot, progress):
    point_id = await linked_with_duplicate(bot, "https://github.com/acme/platform/issues/42")
    await deliver(bot, *github_assigned())
    assert not started_dms(bot, USER) and not started_dms(bot, OTHER)
    with bot.db.session() as s:
        assert started_points(session=s, point_ids=[point_id]) == {point_id}


# ------------------------------------------------------------------ updates


def github_comment(text: str, comment_id: int) -> tuple[str, bytes, dict]:
    payload = tr.github_issue("acme/platform", 42, action="created")
    payload["comment"] = {"id": comment_id, "body": text, "user": {"login": "octocat", "id": 1},
                          "created_at": payload["issue"]["updated_at"], "html_url": "https://github.com/acme/platform/issues/42#c"}
    return "github", *tr.github("issue_comment", payload)


async def run_job(bot, day: int) -> bool:
    ran = await bot.deps.scheduler.run(JOB, datetime(2026, 12, 7 + day, 15, tzinfo=timezone.utc))
    await bot.drain()
    return ran


async def test_updates_are_batched_to_one_dm_per_reporter_per_report_a_day(bot):
    point_id = await linked_with_duplicate(bot, "https://github.com/acme/platform/issues/42")
    await deliver(bot, *github_comment(f"{MARKER} The fix is in review.", 501))
    await deliver(bot, *github_comment(f"{MARKER} The fix is in review.", 501))  # redelivered: one update
    await deliver(bot, *github_comment("Just a comment, not for reporters.", 502))
    await deliver(bot, *github_comment(f"{MARKER}: not the marker alone", 503))
    await run(bot, f"update FB-{point_id} Rolling out to staging <!channel> tomorrow", HOST)
    await run(bot, f"update FB-{point_id} Rolling out to staging <!channel> tomorrow", HOST)  # the same words: kept once
    await run(bot, f"update FB-{point_id} nope", USER)  # not a host
    assert not update_dms(bot, USER)  # nothing until the daily job
    assert await run_job(bot, 0)
    assert not await run_job(bot, 0)  # another instance, the same day: nothing
    for user in (USER, OTHER):
        [dm] = update_dms(bot, user)
        shown = json.dumps(dm["blocks"])
        assert "The fix is in review." in shown and "Rolling out to staging" in shown
        assert "<!channel>" not in shown and "Just a comment" not in shown and "not the marker alone" not in shown
    assert not update_dms(bot, HOST)
    assert await run_job(bot, 1)  # the next day with nothing new: no DM
    assert len(update_dms(bot, USER)) == 1
    await run(bot, f"update FB-{point_id} Deployed.", HOST)
    assert await run_job(bot, 2)
    assert len(update_dms(bot, USER)) == 2 and len(update_dms(bot, OTHER)) == 2
    assert "Deployed." in json.dumps(update_dms(bot, USER)[-1]["blocks"])


@pytest.mark.parametrize("progress", [Progress(updates=False)])
async def test_updates_turned_off_are_neither_read_nor_accepted(bot, progress):
    point_id = await linked_with_duplicate(bot, "https://github.com/acme/platform/issues/42")
    await deliver(bot, *github_comment(f"{MARKER} The fix is in review.", 501))
    await run(bot, f"update FB-{point_id} soon", HOST)
    assert "turned off" in bot.fake.calls_to("response_url")[-1].body["text"]
    assert JOB not in bot.deps.scheduler.jobs
    assert bot.deps.scheduler.off[JOB] == "issues.progress.updates is false in the team policy"  # `jobs` says why
    assert not update_dms(bot, USER)


def test_the_stage_is_one_function_of_status_and_start():
    point = FrictionPoint(team_id="T1", filed_by="U1", text="x", source="command", intake_key="k", status="new")
    assert stage_of(point) == Stage.new
    for status, started, stage in [("acknowledged", False, Stage.triaged), ("linked", False, Stage.linked),
                                   ("linked", True, Stage.in_progress), ("resolved", True, Stage.fixed),
                                   ("wont_fix", False, Stage.not_planned), ("duplicate", False, Stage.merged)]:
        point.status = status
        assert stage_of(point, started) == stage




async def test_the_stage_and_link_show_in_mine_app_home_and_the_dashboard(bot):
    from bot.web.dashboard import gather, render
    from tests.slack_requests import app_home_opened, event_callback

    url = "https://github.com/acme/platform/issues/42"
    point_id = await linked_with_duplicate(bot, url)
    await run(bot, "mine", USER)
    assert "Issue linked" in json.dumps(bot.fake.calls_to("response_url")[-1].body)
    await deliver(bot, *github_assigned())
    await run(bot, "mine", USER)
    mine = json.dumps(bot.fake.calls_to("response_url")[-1].body)
    assert "In progress" in mine and url in mine
    for user in (USER, HOST):  # the reporter's App Home, and the hosts' queue
        await bot.post(*event_callback(app_home_opened(user=user)))
        await bot.settle()
        home = json.dumps(bot.fake.calls_to("views.publish")[-1].body)
        assert "In progress" in home and url in home, user
    data = bot.db.transact(gather, days=30, policy=bot.deps.policy)
    assert point_id in data.started and "in progress" in render(bot.deps.policy, data)

