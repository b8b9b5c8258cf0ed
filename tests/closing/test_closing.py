"""Closing the loop: tracker webhooks in each tracker's format, signed as each signs, to the DMs."""

import json

import pytest
from sqlmodel import select

from bot.policy import Closing, Hosts, Policy, Triage
from bot.trackers.github import verify as verify_github
from storage.models import ClosureNotice, FrictionPoint
from tests import tracker_requests as tr
from tests.slack_requests import USER, block_actions, element_action, interactive, slash_command, view_submission

HOST, OTHER = "U0HOST0001", "U0OTHER001"
ANNOUNCE = "C0ANNOUNCE"
ISSUE_URL = "https://github.com/acme/platform/issues/42"


@pytest.fixture
def policy() -> Policy:
    return Policy(hosts=Hosts(users=[HOST]), triage=Triage(channel="C0TRIAGE01"), closing=Closing(announce_channel=ANNOUNCE))


@pytest.fixture
def settings_overrides() -> dict:
    return tr.SETTINGS


async def run(bot, text: str, user: str) -> None:
    await bot.post(*slash_command(text, fake_url=bot.fake.url, user=user))
    await bot.drain()


async def file_and_link(bot, text: str, url: str = ISSUE_URL, user: str = USER) -> int:
    await run(bot, text, user)
    with bot.db.session() as s:
        point_id = s.exec(select(FrictionPoint.id).order_by(FrictionPoint.id.desc())).first()
    await run(bot, f"link FB-{point_id} {url}", HOST)
    return point_id


async def deliver(bot, route: str, body: bytes, headers: dict):
    resp = await bot.http.post(f"/webhooks/{route}", content=body, headers=headers)
    await bot.drain()
    return resp


def notices_to(bot, user: str) -> list[dict]:
    return [c.body for c in bot.fake.calls_to("chat.postMessage")
            if c.body["channel"] == user and any(b.get("block_id") == "closure_feedback" for b in c.body.get("blocks", []))]


def point(bot, point_id: int) -> FrictionPoint:
    with bot.db.session() as s:
        return s.get(FrictionPoint, point_id)


def test_github_signature_matches_the_documented_test_vector():
    headers = {"x-hub-signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}
    assert verify_github("It's a Secret to Everybody", b"Hello, World!", headers)
    assert not verify_github("It's a Secret to Everybody", b"Hello, World?", headers)


async def test_github_closure_notifies_each_reporter_once_however_often_it_arrives(bot):
    point_id = await file_and_link(bot, "staging deploys hang for ten minutes")
    payload = tr.github_issue("acme/platform", 42)
    for attempt in range(10):  # redeliveries (same id) and repeats with new ids
        resp = await deliver(bot, "github", *tr.github("issues", payload, delivery="same-id" if attempt < 5 else None))
        assert resp.status_code == 200
    [notice] = notices_to(bot, USER)
    assert "it's fixed" in notice["text"] and "FB-1" in notice["text"]
    shown = json.dumps(notice["blocks"])
    assert ISSUE_URL in shown and "staging deploys hang" in shown
    assert {e["action_id"] for b in notice["blocks"] for e in b.get("elements", []) if "action_id" in e} == {"closure_works", "closure_broken"}
    assert point(bot, point_id).status == "resolved"
    [announcement] = [c.body for c in bot.fake.calls_to("chat.postMessage") if c.body["channel"] == ANNOUNCE]
    assert "You said, we did" in announcement["text"] and "1 person" in announcement["text"]
    assert any(c.body["ts"] == point(bot, point_id).card_ts for c in bot.fake.calls_to("chat.update"))


async def test_merged_duplicates_reporters_are_notified_too(bot):
    older = await file_and_link(bot, "staging database is down")
    await run(bot, "staging db unreachable since 9am", OTHER)
    newer = older + 1
    with bot.db.session() as s, s.begin():
        from bot.triage import service as triage
        triage.merge(session=s, point_id=newer, into_id=older, actor=HOST, prefix="FB")
    await deliver(bot, "github", *tr.github("issues", tr.github_issue("acme/platform", 42)))
    assert len(notices_to(bot, USER)) == 1 and len(notices_to(bot, OTHER)) == 1
    assert "staging db unreachable" in json.dumps(notices_to(bot, OTHER)[0]["blocks"])  # their own words


async def test_not_planned_reopen_and_second_closure(bot):
    point_id = await file_and_link(bot, "please add arm64 runners")
    await deliver(bot, "github", *tr.github("issues", tr.github_issue("acme/platform", 42, state_reason="not_planned")))
    [first] = [c.body for c in bot.fake.calls_to("chat.postMessage") if c.body["channel"] == USER and "About your report" in c.body["text"]]
    assert "without a fix" in json.dumps(first["blocks"]) and point(bot, point_id).status == "wont_fix"
    assert not [c for c in bot.fake.calls_to("chat.postMessage") if c.body["channel"] == ANNOUNCE]
    await deliver(bot, "github", *tr.github("issues", tr.github_issue("acme/platform", 42, action="reopened")))
    assert point(bot, point_id).status == "linked"
    for _ in range(3):
        await deliver(bot, "github", *tr.github("issues", tr.github_issue("acme/platform", 42)))
    assert len(notices_to(bot, USER)) == 2  # the not-planned notice, then one for the real fix
    assert point(bot, point_id).status == "resolved"


async def test_merged_pr_closes_the_issues_it_fixes(bot):
    await file_and_link(bot, "deploy logs are truncated")
    payload = tr.github_pr_merged("acme/platform", 77, "Raises the log limit.\n\nFixes #42, refs #50")
    await deliver(bot, "github", *tr.github("pull_request", payload))
    assert len(notices_to(bot, USER)) == 1


async def test_works_for_me_and_still_broken(bot):
    point_id = await file_and_link(bot, "ci cache misses on every run")
    await deliver(bot, "github", *tr.github("issues", tr.github_issue("acme/platform", 42)))
    [notice] = notices_to(bot, USER)
    actions = next(b for b in notice["blocks"] if b.get("block_id") == "closure_feedback")
    works, broken = actions["elements"]
    url = f"{bot.fake.url}/response_url/notice"
    await bot.post(*interactive(block_actions([element_action(works)], block_id="closure_feedback", response_url=url, channel="D0DM000001")))
    await bot.drain()
    assert bot.fake.calls_to("response_url")[-1].body["replace_original"] is True
    with bot.db.session() as s:
        assert s.exec(select(ClosureNotice.feedback)).one() == "works"
    await bot.post(*interactive(block_actions([element_action(broken)], block_id="closure_feedback", response_url=url, channel="D0DM000001")))
    await bot.drain()
    view = bot.fake.calls_to("views.open")[-1].body["view"]
    empty = {"closure_comment": {"closure_comment": {"type": "plain_text_input", "value": ""}}}
    assert (await bot.post(*interactive(view_submission(view, empty)))).json()["response_action"] == "errors"
    values = {"closure_comment": {"closure_comment": {"type": "plain_text_input", "value": "still misses on main"}}}
    assert (await bot.post(*interactive(view_submission(view, values, user=OTHER)))).json()["response_action"] == "errors"
    resp = await bot.post(*interactive(view_submission(view, values)))
    assert resp.json()["response_action"] == "update"
    await bot.drain()
    p = point(bot, point_id)
    assert p.status in ("new", "acknowledged")
    [alert] = [c.body for c in bot.fake.calls_to("chat.postMessage") if c.body.get("thread_ts") == p.card_ts]
    assert "still broken" in alert["text"] and "still misses on main" in json.dumps(alert["blocks"])


async def test_jira_linear_and_gitlab_closures(bot):
    await file_and_link(bot, "vpn drops hourly", "https://acme.atlassian.net/browse/NET-7")
    await file_and_link(bot, "docs search broken", "https://linear.app/acme/issue/DOC-3/docs-search", user=OTHER)
    await file_and_link(bot, "runner images stale", "https://gitlab.com/acme/runners/-/issues/9", user="U0THIRD001")
    assert (await deliver(bot, "jira", *tr.jira("NET-7", "Done"))).status_code == 200
    assert (await deliver(bot, "linear", *tr.linear("DOC-3", "completed", {"stateId": "s1", "completedAt": None}))).status_code == 200
    assert (await deliver(bot, "gitlab", *tr.gitlab("acme/runners", 9))).status_code == 200
    assert len(notices_to(bot, USER)) == 1 and len(notices_to(bot, OTHER)) == 1 and len(notices_to(bot, "U0THIRD001")) == 1
    # Jira "Won't Do" is not a fix; a Jira reopen clears the resolution.
    await deliver(bot, "jira", *tr.jira("NET-7", None))
    assert point(bot, 1).status == "linked"
    await deliver(bot, "jira", *tr.jira("NET-7", "Won't Do"))
    assert point(bot, 1).status == "wont_fix"
    assert len([c for c in notices_to(bot, USER) if c["text"].startswith("About your report")]) == 1


async def test_bad_input_gets_clear_statuses_and_changes_nothing(bot):
    point_id = await file_and_link(bot, "helm chart lint is slow")
    body, headers = tr.github("issues", tr.github_issue("acme/platform", 42), secret="wrong secret")
    assert (await deliver(bot, "github", body, headers)).status_code == 401
    body, headers = tr.github("issues", {"not": "an issue"})
    assert (await deliver(bot, "github", body, headers)).status_code == 400
    body = b"{not json"
    headers = dict(tr.github("issues", {})[1], **{"x-hub-signature-256": "sha256=" + tr._hex(tr.GITHUB_SECRET, body)})
    assert (await deliver(bot, "github", body, headers)).status_code == 400
    assert (await deliver(bot, "github", *tr.github("issues", tr.github_issue("acme/other", 1)))).status_code == 200
    assert (await deliver(bot, "gitlab", *tr.gitlab("acme/runners", 9, token="wrong"))).status_code == 401
    stale = tr.linear("DOC-3", "completed", {"stateId": "s1"}, timestamp_ms=1_600_000_000_000)
    assert (await deliver(bot, "linear", *stale)).status_code == 401
    assert (await deliver(bot, "jira", *tr.jira("NET-7", "Done", secret="nope"))).status_code == 401
    assert point(bot, point_id).status == "linked"
    assert notices_to(bot, USER) == []


async def test_unconfigured_tracker_is_404(bot):
    bot.deps.settings.github_webhook_secret = None  # read per request
    resp = await deliver(bot, "github", *tr.github("issues", tr.github_issue("acme/platform", 42)))
    assert resp.status_code == 404 and "not configured" in resp.json()["message"]
