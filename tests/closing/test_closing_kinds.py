"""Issue #12, other inputs of the same kinds as its numbered ones, through the real app (SQLite and
PostgreSQL): ids that are not the issue's, closing references GitHub or GitLab would not act on (or
would), issue URLs in the other forms people paste, tracker states that mean "not planned", and
deliveries that do match counted as matched."""

import json
import logging

import pytest
from alembic import command
from sqlalchemy import text
from sqlmodel import select

from bot.trackers import linear
from storage.database import alembic_config
from storage.models import TrackerLink
from tests import tracker_requests as tr
from tests.closing.test_closing import HOST, deliver, file_and_link, notices_to, point, policy, run, settings_overrides  # noqa: F401  # noqa: F401
from tests.slack_requests import USER

OTHER = "U0OTHER001"


def links(bot) -> list[TrackerLink]:
    with bot.db.session() as s:
        return list(s.exec(select(TrackerLink).order_by(TrackerLink.id)).all())


# Ids of another kind of object ---------------------------------------------------------------


async def test_a_merge_request_never_closes_an_issue_that_shares_its_database_id(bot):
    """GitLab numbers issues and merge requests in separate tables: MR id 309 is not issue id 309."""
    point_id = await file_and_link(bot, "runner images stale", "https://gitlab.com/acme/runners/-/issues/9")
    await deliver(bot, "gitlab", *tr.gitlab("acme/runners", 9, "reopen"))  # tells us the issue's id: 309
    assert links(bot)[0].issue_id == "309"
    body, _ = tr.gitlab("acme/runners", 5, "merge", kind="merge_request", description="Speeds up the runners")
    payload = json.loads(body)
    payload["object_attributes"]["id"] = 309
    await deliver(bot, "gitlab", *tr.gitlab_signed(payload))
    assert notices_to(bot, USER) == [] and point(bot, point_id).status == "linked"


async def test_a_pull_request_id_is_not_an_issue_id(bot):
    """GitHub's ``pull_request.id`` is another sequence than issue ids (and than the id the issues
    API gives the same pull request): a merged PR whose id equals a linked issue's closes nothing."""
    point_id = await file_and_link(bot, "staging deploys hang")
    await deliver(bot, "github", *tr.github("issues", tr.github_issue("acme/platform", 42, action="reopened")))
    assert links(bot)[0].issue_id == "1042"
    payload = tr.github_pr_merged("acme/platform", 77, "Speeds up deploys")
    payload["pull_request"]["id"] = 1042
    await deliver(bot, "github", *tr.github("pull_request", payload))
    assert notices_to(bot, USER) == [] and point(bot, point_id).status == "linked"


async def test_a_linked_merge_request_closes_on_merge_after_its_id_was_learned(bot):
    await file_and_link(bot, "runner images stale", "https://gitlab.com/acme/runners/-/merge_requests/5")
    await deliver(bot, "gitlab", *tr.gitlab("acme/runners", 5, "reopen", kind="merge_request"))
    await deliver(bot, "gitlab", *tr.gitlab("acme/runners", 5, "merge", kind="merge_request"))
    assert len(notices_to(bot, USER)) == 1


async def test_ids_stored_by_the_previous_release_are_upgraded(bot):
    """Migration 0014: a merge request link's bare id becomes ``mr:<id>``; a pull request link's
    id from its webhooks is dropped. Both still close on the next delivery."""
    await file_and_link(bot, "runner images stale", "https://gitlab.com/acme/runners/-/merge_requests/5")
    await file_and_link(bot, "deploys hang", "https://github.com/acme/platform/pull/77", user=OTHER)
    config = alembic_config(bot.db.engine)
    command.downgrade(config, "0013")
    with bot.db.engine.begin() as conn:
        conn.execute(text("UPDATE tracker_link SET issue_id = CASE tracker WHEN 'gitlab' THEN '305' ELSE '279147437' END"))
    command.upgrade(config, "head")
    assert [lnk.issue_id for lnk in links(bot)] == ["mr:305", None]
    await deliver(bot, "gitlab", *tr.gitlab("acme/runners", 5, "merge", kind="merge_request"))
    await deliver(bot, "github", *tr.github("pull_request", tr.github_pr_merged("acme/platform", 77, "")))
    assert len(notices_to(bot, USER)) == 1 and len(notices_to(bot, OTHER)) == 1


# Closing references as each tracker reads them ----------------------------------------------


@pytest.mark.parametrize("body", [
    "<!-- Link the issue: Fixes #42 -->\nSpeeds up deploys.",  # a PR template's hint, not rendered
    "Speeds up deploys.\n\n```\ngit commit -m 'Fixes #42'\n```",
    "Speeds up deploys. Write `Fixes #42` to close an issue.",
    "Speeds up deploys.\n\n~~~text\nFixes #42\n~~~",
])
async def test_github_keywords_in_comments_and_code_close_nothing(bot, body):
    """GitHub links references only in rendered text (not in code or HTML comments), and closing
    keywords are references; an issue GitHub does close still sends its own ``closed``."""
    point_id = await file_and_link(bot, "staging deploys hang")
    await deliver(bot, "github", *tr.github("pull_request", tr.github_pr_merged("acme/platform", 77, body)))
    assert notices_to(bot, USER) == [] and point(bot, point_id).status == "linked"
    later = "```\nexample\n```\nFixes #42 `and a code span`"
    await deliver(bot, "github", *tr.github("pull_request", tr.github_pr_merged("acme/platform", 78, later)))
    assert len(notices_to(bot, USER)) == 1


async def test_gitlab_closes_only_issue_urls_on_its_own_host(bot):
    await file_and_link(bot, "runner images stale", "https://gitlab.com/acme/runners/-/issues/9")
    elsewhere = "Closes https://gitlab.example.org/acme/runners/-/issues/9"  # a mirror on another instance
    await deliver(bot, "gitlab", *tr.gitlab("acme/runners", 3, "merge", kind="merge_request", description=elsewhere))
    assert notices_to(bot, USER) == []
    here = "Closes https://gitlab.com/Acme/Runners/-/issues/9"
    await deliver(bot, "gitlab", *tr.gitlab("acme/runners", 4, "merge", kind="merge_request", description=here))
    assert len(notices_to(bot, USER)) == 1


async def test_gitlab_project_reference_in_the_same_namespace_closes(bot):
    """GitLab's reference ``project#123`` names a project in the current project's namespace."""
    await file_and_link(bot, "docs outdated", "https://gitlab.com/acme/platform/docs/-/issues/12")
    body = "Fixes docs#12"
    await deliver(bot, "gitlab", *tr.gitlab("acme/platform/runners", 3, "merge", kind="merge_request", description=body))
    assert len(notices_to(bot, USER)) == 1


# Issue URLs in the forms people paste --------------------------------------------------------


@pytest.mark.parametrize("pasted,tracker,key", [
    ("<https://github.com/acme/platform/pull/7/files|acme/platform#7>", "github", "acme/platform#7"),
    ("https://github.com/acme/platform/pull/7/commits/abc123", "github", "acme/platform#7"),
    ("https://gitlab.com/Acme/Sub/Proj/-/merge_requests/3/diffs", "gitlab", "acme/sub/proj!3"),
    ("https://acme.atlassian.net/jira/software/projects/NET/issues/NET-7", "jira", "NET-7"),
    ("<https://acme.atlassian.net/jira/software/c/projects/NET/boards/1?selectedIssue=net-7&amp;quickFilter=2|board>",
     "jira", "NET-7"),
])
async def test_issue_urls_in_the_other_forms_people_paste_are_linked(bot, pasted, tracker, key):
    await run(bot, "deploys hang", USER)
    await run(bot, f"link FB-1 {pasted}", HOST)
    assert [(lnk.tracker, lnk.key) for lnk in links(bot)] == [(tracker, key)]


# Tracker states that mean "not planned" ------------------------------------------------------


async def test_a_linear_issue_marked_duplicate_is_not_planned(bot):
    point_id = await file_and_link(bot, "docs search broken", "https://linear.app/acme/issue/DOC-3/docs-search")
    body, headers = tr.linear("DOC-3", "duplicate", {"stateId": "state-1", "canceledAt": None})
    await deliver(bot, "linear", body, headers)
    [notice] = notices_to(bot, USER)
    assert "fixed" not in notice["text"] and point(bot, point_id).status == "wont_fix"
    # A poll reads it the same way (not as open: that would reopen the report).
    answer = {"data": {"issue": {"id": "u1", "identifier": "DOC-3", "state": {"type": "duplicate"}}}}
    assert [e.outcome for e in linear.poll_events("DOC-3", answer)] == ["not_planned"]


# Counted once per delivery ------------------------------------------------------------------


async def test_a_merged_pr_that_closes_a_linked_issue_is_not_counted_or_logged_as_unmatched(bot, caplog):
    await file_and_link(bot, "staging deploys hang")
    caplog.set_level(logging.WARNING, logger="bot.closing.deliveries")
    await deliver(bot, "github", *tr.github("pull_request", tr.github_pr_merged("acme/platform", 77, "Fixes #42")))
    assert len(notices_to(bot, USER)) == 1
    metrics = (await bot.http.get("/metrics")).text
    assert 'pf_tracker_events_total{outcome="applied",tracker="github"} 1.0' in metrics
    assert 'outcome="unmatched"' not in metrics
    assert not [r for r in caplog.records if "matches no linked report" in r.getMessage()]
