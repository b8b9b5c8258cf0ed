"""Teams without webhooks (issue #28): the closing poll (``closing.poll_minutes``) reads "started"
from the trackers' APIs too (Jira's In Progress status category, Linear's started state, an
assigned GitHub or GitLab issue), and every reporter hears once however often it is polled."""

from datetime import timedelta

import pytest

from bot.closing.jobs import POLL_JOB as POLL
from bot.policy import Closing, Hosts, Policy, Triage
from tests import tracker_requests as tr
from tests.closing.test_polling import SLOT, trackers  # noqa: F401 (fixture)
from tests.closing.test_polling import settings_overrides as polling_settings
from tests.progress.test_progress import HOST, OTHER, TRIAGE, USER, linked_with_duplicate, started_dms


@pytest.fixture
def policy() -> Policy:
    return Policy(hosts=Hosts(users=[HOST]), triage=Triage(channel=TRIAGE), closing=Closing(poll_minutes=5))


@pytest.fixture
def settings_overrides(trackers) -> dict:  # noqa: F811
    return {**polling_settings.__wrapped__(trackers), **tr.SETTINGS}


CASES = {
    "jira": ("/browse/NET-7", lambda t: t.jira_issue("NET-7", None)),  # open, In Progress ("indeterminate")
    "linear": (None, lambda t: t.linear_issue("DOC-3", "started")),
    "github": ("/acme/platform/issues/42", lambda t: (t.github_issue("acme/platform", 42, "open"),
                                                      t.github["acme/platform#42"].update(assignees=[{"login": "octocat", "id": 1}]))),
}


@pytest.mark.parametrize("tracker", list(CASES))
async def test_a_poll_that_finds_the_issue_started_dms_each_reporter_once(bot, trackers, tracker):  # noqa: F811
    path, make = CASES[tracker]
    url = "https://linear.app/acme/issue/DOC-3/docs-search" if path is None else trackers.url + path
    await linked_with_duplicate(bot, url)
    for n in range(3):
        make(trackers)  # a newer state each time: answered in full, not 304
        await bot.deps.scheduler.run(POLL, SLOT + timedelta(minutes=5 * n))
        await bot.drain()
    assert len(started_dms(bot, USER)) == 1 and len(started_dms(bot, OTHER)) == 1


async def test_an_open_unassigned_issue_has_not_started(bot, trackers):  # noqa: F811
    await linked_with_duplicate(bot, trackers.url + "/acme/platform/issues/42")
    trackers.github_issue("acme/platform", 42, "open")
    await bot.deps.scheduler.run(POLL, SLOT)
    await bot.drain()
    assert not started_dms(bot, USER)
