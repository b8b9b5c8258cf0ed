"""Issue #27: every URL form a person may paste is linked to the tracker the URL is on, decided by
its host when the settings name it (a self-managed GitLab on git.example.com is not GitHub, even in
GitLab's older /group/project/issues/1 form that GitHub also uses), through the real ``link``
command, and a delivery for the issue then reaches the report (SQLite and PostgreSQL)."""

import json

import pytest
from sqlmodel import select

from storage.models import TrackerLink
from tests import tracker_requests as tr
from tests.closing.test_closing import HOST, deliver, notices_to, policy, run  # noqa: F401
from tests.slack_requests import USER


@pytest.fixture
def settings_overrides() -> dict:
    return {**tr.SETTINGS, "github_api_url": "https://ghe.example.com/api/v3",
            "gitlab_api_url": "https://git.example.com/gitlab/api/v4", "jira_base_url": "https://jira.example.com/jira"}


FORMS = [
    # GitHub.com and GitHub Enterprise (its own host, from GITHUB_API_URL)
    ("https://github.com/acme/platform/issues/42", "github", "acme/platform#42"),
    ("https://github.com/acme/platform/pull/42/files", "github", "acme/platform#42"),
    ("https://ghe.example.com/acme/platform/issues/42#issuecomment-1", "github", "acme/platform#42"),
    # Self-managed GitLab under a relative URL root, new and old forms, and gitlab.com
    ("https://git.example.com/gitlab/g/p/-/issues/4", "gitlab", "g/p#4"),
    ("https://git.example.com/gitlab/g/p/issues/4", "gitlab", "g/p#4"),
    ("https://git.example.com/gitlab/g/sub/p/merge_requests/3", "gitlab", "g/sub/p!3"),
    ("https://git.example.com/gitlab/groups/g/-/epics/2", "gitlab", "g#2"),
    ("https://gitlab.com/g/p/issues/4", "gitlab", "g/p#4"),
    ("https://gitlab.com/groups/g/-/work_items/2", "gitlab", "g#2"),
    # Jira Server/Data Center under /jira, and board URLs with the issue open beside them
    ("https://jira.example.com/jira/browse/NET-7", "jira", "NET-7"),
    ("https://jira.example.com/jira/secure/RapidBoard.jspa?rapidView=1&selectedIssue=NET-7", "jira", "NET-7"),
    ("https://acme.atlassian.net/jira/software/projects/NET/boards/1?selectedIssue=NET-7", "jira", "NET-7"),
    # Linear, with and without the slug
    ("https://linear.app/acme/issue/ENG-5/docs-search-is-broken", "linear", "ENG-5"),
    ("https://linear.app/acme/issue/ENG-5", "linear", "ENG-5"),
]


@pytest.mark.parametrize("url,tracker,key", FORMS, ids=[f[0].split("://", 1)[1] for f in FORMS])
async def test_each_pasted_form_links_the_tracker_the_url_is_on(bot, url, tracker, key):
    await run(bot, "staging deploys hang", USER)
    await run(bot, f"link FB-1 {url}", HOST)
    with bot.db.session() as s:
        [link] = s.exec(select(TrackerLink)).all()
    assert (link.tracker, link.key) == (tracker, key)


async def test_an_old_form_gitlab_link_on_a_self_managed_host_closes_from_its_delivery(bot):
    await run(bot, "runner images are stale", USER)
    await run(bot, "link FB-1 https://git.example.com/gitlab/g/p/issues/4", HOST)
    payload = json.loads(tr.gitlab("g/p", 4)[0])
    payload["object_attributes"]["url"] = "https://git.example.com/gitlab/g/p/-/issues/4"
    await deliver(bot, "gitlab", *tr.gitlab_signed(payload))
    assert len(notices_to(bot, USER)) == 1
