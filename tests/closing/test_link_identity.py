"""Identity at link time (issue #12): a host links an issue of a tracker whose API token is set,
and after the ack the bot asks that tracker's API (a fake on 127.0.0.1 answering in each API's
documented shape, through real httpx) for the issue's stable ids and stores them on the link,
waiting out a 429's Retry-After. Without a token nothing is asked (the first delivery fills them)."""

import time

import pytest
from sqlmodel import select

from storage.models import TrackerLink
from tests import tracker_requests as tr
from tests.closing.test_closing import deliver
from tests.closing.test_polling import (  # noqa: F401 (fixtures)
    HOST,
    USER,
    file_and_link,
    notices_to,
    policy,
    run,
    trackers,
)
from tests.closing.test_polling import settings_overrides as polling_settings


@pytest.fixture
def settings_overrides(trackers) -> dict:
    return {**polling_settings.__wrapped__(trackers), **tr.SETTINGS}


def link_of(bot, point_id: int) -> TrackerLink:
    with bot.db.session() as s:
        return s.exec(select(TrackerLink).where(TrackerLink.friction_point_id == point_id)).one()


CASES = {
    "github": ("/acme/platform/issues/42", lambda t: t.github_issue("acme/platform", 42), ("1042", "1296269")),
    "gitlab": ("/acme/runners/-/issues/9", lambda t: t.gitlab_item("acme/runners", 9, "opened"), ("309", "15")),
    "jira": ("/browse/NET-7", lambda t: t.jira_issue("NET-7", None), ("10001", None)),
    "linear": (None, lambda t: t.linear_issue("DOC-3", "started"),
               ("2174add1-f7c8-44e3-bbf3-2d60b5ea8bc9", "72b2a2dc-6f4f-4423-9d34-24b5bd10634a")),
}


@pytest.mark.parametrize("tracker", list(CASES))
async def test_linking_stores_the_issue_identity_from_the_tracker_api(bot, trackers, tracker):
    path, make, (issue_id, project_id) = CASES[tracker]
    make(trackers)
    url = "https://linear.app/acme/issue/DOC-3/docs-search" if path is None else trackers.url + path
    point_id = await file_and_link(bot, "something is broken here", url)  # drains: the background fetch is done
    link = link_of(bot, point_id)
    assert (link.issue_id, link.project_id) == (issue_id, project_id)
    assert trackers.to(tracker, identity=True) and not trackers.to(tracker)  # asked once, by the identity fetch


async def test_a_moved_jira_issue_is_followed_at_link_time(bot, trackers):
    trackers.jira_issue("NET-7", None)
    trackers.jira["NET-7"]["key"] = "OPS-12"  # Jira answers a moved issue's old key with the new one
    point_id = await file_and_link(bot, "vpn drops", trackers.url + "/browse/NET-7")
    link = link_of(bot, point_id)
    assert (link.key, link.issue_id) == ("OPS-12", "10001")


async def test_a_rate_limited_answer_is_waited_out(bot, trackers):
    trackers.github_issue("acme/platform", 42)
    trackers.script("github", 429, {"Retry-After": "1"}, {"message": "API rate limit exceeded"})
    started = time.monotonic()
    point_id = await file_and_link(bot, "deploys hang", trackers.url + "/acme/platform/issues/42")
    assert time.monotonic() - started >= 1
    assert [s.status for s in trackers.to("github", identity=True)] == [429, 200, 200]  # issue (twice), repository
    assert link_of(bot, point_id).issue_id == "1042"


async def test_a_limit_longer_than_a_minute_is_left_to_the_first_delivery(bot, trackers):
    trackers.github_issue("acme/platform", 42)
    trackers.script("github", 429, {"Retry-After": "3600"}, {"message": "API rate limit exceeded"})
    point_id = await file_and_link(bot, "deploys hang", trackers.url + "/acme/platform/issues/42")
    assert link_of(bot, point_id).issue_id is None and len(trackers.to("github", identity=True)) == 1


@pytest.mark.parametrize("settings_overrides", [{}])
async def test_without_a_token_nothing_is_asked(bot, trackers):
    point_id = await file_and_link(bot, "deploys hang", "https://github.com/acme/platform/issues/42")
    assert link_of(bot, point_id).issue_id is None and trackers.seen == []


async def test_a_linked_pull_request_closes_on_merge_after_its_identity_was_learned(bot, trackers):
    """The issues API gives a pull request an issue id; its ``pull_request`` deliveries carry the
    pull request's own id, another number: the merge still reaches the link."""
    trackers.github_issue("acme/platform", 77, pr_merged=False)
    point_id = await file_and_link(bot, "deploys hang", trackers.url + "/acme/platform/pull/77")
    assert link_of(bot, point_id).issue_id == "1077"
    payload = tr.github_pr_merged("acme/platform", 77, "Speeds up deploys")
    payload["pull_request"]["id"] = 279147437  # the id in GitHub's own pull_request example
    await deliver(bot, "github", *tr.github("pull_request", payload))
    assert len(notices_to(bot, USER)) == 1
