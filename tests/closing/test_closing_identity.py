"""Issue #12: closing the loop against how trackers really behave. Each numbered failing input of
the issue, through the real app (Bolt, Starlette routes, the outbox, SQLite and PostgreSQL)."""

import json
import logging
from datetime import timedelta

from sqlalchemy import func, update
from sqlmodel import select

from bot.closing import deliveries
from bot.closing.jobs import RECOVERY_JOB
from storage.models import FrictionPoint, TrackerDelivery, TrackerLink, utcnow
from tests import tracker_requests as tr
from tests.closing.test_closing import ANNOUNCE, HOST, deliver, file_and_link, notices_to, point, policy, run, settings_overrides  # noqa: F401  (fixtures)  # noqa: F401
from tests.slack_requests import USER


def announcements(bot) -> list[dict]:
    return [c.body for c in bot.fake.calls_to("chat.postMessage") if c.body["channel"] == ANNOUNCE]


def links(bot) -> list[TrackerLink]:
    with bot.db.session() as s:
        return list(s.exec(select(TrackerLink).order_by(TrackerLink.id)).all())


# 1. Case -------------------------------------------------------------------------------------


async def test_1_a_delivery_in_the_repositorys_canonical_case_reaches_a_lower_case_link(bot):
    point_id = await file_and_link(bot, "staging deploys hang", "https://github.com/acme-corp/platform-api/issues/42")
    await deliver(bot, "github", *tr.github("issues", tr.github_issue("Acme-Corp/Platform-API", 42)))
    assert len(notices_to(bot, USER)) == 1 and point(bot, point_id).status == "resolved"
    [link] = links(bot)
    assert (link.key, link.issue_id, link.project_id) == ("acme-corp/platform-api#42", "1042", "42")


async def test_1_a_pull_request_naming_the_repository_in_another_case_closes_it(bot):
    await file_and_link(bot, "ci cache misses", "https://github.com/acme/platform/issues/42")
    payload = tr.github_pr_merged("acme/platform", 77, "Fixes Acme/Platform#42")
    await deliver(bot, "github", *tr.github("pull_request", payload))
    assert len(notices_to(bot, USER)) == 1


# 2. Wrong branch -----------------------------------------------------------------------------


async def test_2_a_pull_request_merged_into_another_branch_closes_nothing_it_mentions(bot):
    point_id = await file_and_link(bot, "deploy logs truncated")
    payload = tr.github_pr_merged("acme/platform", 77, "Fixes #42", base="release/2.3")
    assert (await deliver(bot, "github", *tr.github("pull_request", payload))).status_code == 200
    assert notices_to(bot, USER) == [] and announcements(bot) == []
    assert point(bot, point_id).status == "linked"
    # The same pull request into the default branch does close it.
    payload = tr.github_pr_merged("acme/platform", 78, "Fixes #42")
    await deliver(bot, "github", *tr.github("pull_request", payload))
    assert len(notices_to(bot, USER)) == 1


async def test_2_gitlab_merge_into_another_branch_closes_nothing_it_mentions(bot):
    await file_and_link(bot, "runner images stale", "https://gitlab.com/acme/runners/-/issues/9")
    body, headers = tr.gitlab("acme/runners", 3, "merge", kind="merge_request", description="Closes #9")
    payload = json.loads(body)
    payload["object_attributes"]["target_branch"] = "release/2.3"
    await deliver(bot, "gitlab", *tr.gitlab_signed(payload))
    assert notices_to(bot, USER) == []
    await deliver(bot, "gitlab", *tr.gitlab("acme/runners", 4, "merge", kind="merge_request", description="Fixes #8, #9 and #10"))
    assert len(notices_to(bot, USER)) == 1


# 3. Jira key change --------------------------------------------------------------------------


KEY_CHANGE = [{"field": "Key", "fieldtype": "jira", "from": None, "fromString": "NET-7", "to": None, "toString": "OPS-12"},
              {"field": "project", "fieldtype": "jira", "fieldId": "project", "from": "10000", "fromString": "Network",
               "to": "10001", "toString": "Operations"}]


async def test_3_a_jira_issue_moved_to_another_project_still_closes_the_loop(bot):
    point_id = await file_and_link(bot, "vpn drops hourly", "https://acme.atlassian.net/browse/NET-7")
    await deliver(bot, "jira", *tr.jira("OPS-12", None, changelog=KEY_CHANGE))
    assert [(lnk.key, lnk.issue_id) for lnk in links(bot)] == [("OPS-12", "10001")]
    await deliver(bot, "jira", *tr.jira("OPS-12", "Done"))
    assert len(notices_to(bot, USER)) == 1 and point(bot, point_id).status == "resolved"


async def test_3_a_move_missed_is_caught_by_the_issue_id(bot):
    """The key change was not delivered (webhook down), but an earlier delivery told us the id."""
    await file_and_link(bot, "vpn drops hourly", "https://acme.atlassian.net/browse/NET-7")
    await deliver(bot, "jira", *tr.jira("NET-7", "Done"))
    await deliver(bot, "jira", *tr.jira("NET-7", None))  # reopened
    await deliver(bot, "jira", *tr.jira("OPS-12", "Done"))  # same issue id 10001, new key
    assert len(notices_to(bot, USER)) == 2
    assert [lnk.key for lnk in links(bot)] == ["OPS-12"]


async def test_3_another_issue_with_an_old_key_does_not_close_a_link_that_knows_its_id(bot):
    await file_and_link(bot, "vpn drops hourly", "https://acme.atlassian.net/browse/NET-7")
    await deliver(bot, "jira", *tr.jira("NET-7", None, changelog=[]))  # nothing to do: no change we read
    await deliver(bot, "jira", *tr.jira("OPS-12", None, changelog=KEY_CHANGE))
    await deliver(bot, "jira", *tr.jira("NET-7", "Done", issue_id="20002"))  # a different issue under the old key
    assert notices_to(bot, USER) == []


# 4. Slack's link markup ----------------------------------------------------------------------


async def test_4_links_pasted_in_slack_markup_are_linked(bot):
    await run(bot, "staging deploys hang", USER)
    await run(bot, "vpn drops hourly", "U0OTHER001")
    await run(bot, "link FB-1 <http://github.com/acme/platform/issues/42|github.com/acme/platform/issues/42>", HOST)
    await run(bot, "link FB-2 <https://acme.atlassian.net/browse/NET-7|NET-7>", HOST)
    assert [(lnk.tracker, lnk.key) for lnk in links(bot)] == [("github", "acme/platform#42"), ("jira", "NET-7")]
    await deliver(bot, "github", *tr.github("issues", tr.github_issue("acme/platform", 42)))
    await deliver(bot, "jira", *tr.jira("NET-7", "Done"))
    assert len(notices_to(bot, USER)) == 1 and len(notices_to(bot, "U0OTHER001")) == 1


# 5. GitHub's default content type ------------------------------------------------------------


async def test_5_github_form_encoded_deliveries_are_read_and_checked_the_same_way(bot):
    point_id = await file_and_link(bot, "staging deploys hang")
    payload = tr.github_issue("acme/platform", 42)
    body, headers = tr.github("issues", payload, form=True, secret="wrong")
    assert (await deliver(bot, "github", body, headers)).status_code == 401
    body, headers = tr.github("issues", payload, form=True)
    assert body.startswith(b"payload=%7B")
    resp = await deliver(bot, "github", body, headers)
    assert resp.status_code == 200, resp.text
    assert len(notices_to(bot, USER)) == 1 and point(bot, point_id).status == "resolved"


# 6. Replays ----------------------------------------------------------------------------------


async def test_6_replayed_closed_and_reopened_bodies_notify_once(bot):
    await file_and_link(bot, "staging deploys hang")
    closed = tr.github_issue("acme/platform", 42)
    reopened = tr.github_issue("acme/platform", 42, action="reopened")  # later than the close
    for _ in range(10):  # GitHub's delivery id is not signed: each replay has a new one
        await deliver(bot, "github", *tr.github("issues", closed))
        await deliver(bot, "github", *tr.github("issues", reopened))
    assert len(notices_to(bot, USER)) == 1 and len(announcements(bot)) == 1
    # A genuine closure after the reopen notifies again, once.
    again = tr.github_issue("acme/platform", 42)
    for _ in range(3):
        await deliver(bot, "github", *tr.github("issues", again))
    assert len(notices_to(bot, USER)) == 2 and len(announcements(bot)) == 2


async def test_6_out_of_order_deliveries_change_nothing(bot):
    point_id = await file_and_link(bot, "staging deploys hang")
    closed = tr.github_issue("acme/platform", 42)
    reopened = tr.github_issue("acme/platform", 42, action="reopened")
    await deliver(bot, "github", *tr.github("issues", reopened))  # the later state arrives first
    await deliver(bot, "github", *tr.github("issues", closed))
    assert notices_to(bot, USER) == [] and point(bot, point_id).status == "linked"


async def test_6_jira_replays_notify_once(bot):
    await file_and_link(bot, "vpn drops hourly", "https://acme.atlassian.net/browse/NET-7")
    done, reopened = tr.jira("NET-7", "Done"), tr.jira("NET-7", None)
    for _ in range(10):
        await deliver(bot, "jira", *done)
        await deliver(bot, "jira", *reopened)
    assert len(notices_to(bot, USER)) == 1


# 7. Answer fast; a crash between the answer and the apply loses nothing ----------------------


async def test_7_a_delivery_recorded_but_not_applied_is_applied_on_the_next_tick(bot):
    point_id = await file_and_link(bot, "staging deploys hang")
    body, _ = tr.github("issues", tr.github_issue("acme/platform", 42))
    from bot.trackers import github
    found = github.read(body, {"x-github-event": "issues"})
    # What the route does before it answers, then the process dies: no apply task ran.
    delivery = await bot.db.run(deliveries.record, tracker="github", body=body, events=found)
    assert delivery and notices_to(bot, USER) == []
    with bot.db.session() as s, s.begin():
        s.exec(update(TrackerDelivery).values(received_at=utcnow() - timedelta(minutes=2)))
    assert await bot.deps.scheduler.run(RECOVERY_JOB)
    await bot.drain()
    assert len(notices_to(bot, USER)) == 1 and point(bot, point_id).status == "resolved"
    # The same body delivered again (GitHub's redelivery) is answered and changes nothing.
    resp = await deliver(bot, "github", body, tr.github("issues", tr.github_issue("acme/platform", 42))[1] | {
        "x-hub-signature-256": "sha256=" + tr._hex(tr.GITHUB_SECRET, body)})
    assert resp.json()["message"] == "already received"
    assert len(notices_to(bot, USER)) == 1


# Visible when nothing matched ----------------------------------------------------------------


async def test_unmatched_deliveries_are_counted_and_logged_once_per_key(bot, caplog):
    await file_and_link(bot, "staging deploys hang")
    caplog.set_level(logging.WARNING, logger="bot.closing.deliveries")
    for _ in range(3):
        await deliver(bot, "github", *tr.github("issues", tr.github_issue("acme/platfrom", 42)))
    await deliver(bot, "github", *tr.github("issues", tr.github_issue("acme/platform", 42)))
    metrics = (await bot.http.get("/metrics")).text
    assert 'pf_tracker_events_total{outcome="unmatched",tracker="github"} 3.0' in metrics
    assert 'pf_tracker_events_total{outcome="applied",tracker="github"} 1.0' in metrics
    logged = [r.getMessage() for r in caplog.records if "matches no linked report" in r.getMessage()]
    assert logged == ["github delivery for acme/platfrom#42 matches no linked report"]
    with bot.db.session() as s:  # the unmatched ones answered after one read: only the applied one recorded
        assert s.exec(select(func.count()).select_from(TrackerDelivery)).one() == 1


async def test_nothing_is_recorded_for_a_delivery_that_says_nothing_we_read(bot):
    await deliver(bot, "github", *tr.github("issues", tr.github_issue("acme/platform", 42, action="labeled")))
    with bot.db.session() as s:
        assert s.exec(select(func.count()).select_from(TrackerDelivery)).one() == 0
        assert s.exec(select(func.count()).select_from(FrictionPoint)).one() == 0
