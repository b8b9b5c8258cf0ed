"""The tracker modules on each tracker's own documented examples: closing references as the
trackers' docs define them, and the vendor webhook payloads (tests/fixtures/trackers/, see
SOURCES.md) replayed through the real app."""

import json
import time
from pathlib import Path

import pytest
from sqlmodel import select

from bot.trackers import MODULES, Tracker, github, gitlab, parse_issue_url
from storage.models import TrackerLink
from tests import tracker_requests as tr
from tests.closing.test_closing import deliver, file_and_link, notices_to, point, policy, settings_overrides  # noqa: F401  # noqa: F401
from tests.slack_requests import USER

FIXTURES = Path(__file__).parents[1] / "fixtures" / "trackers"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def links(bot) -> list[TrackerLink]:
    with bot.db.session() as s:
        return list(s.exec(select(TrackerLink).order_by(TrackerLink.id)).all())


# ------------------------------------------------------------------ closing references


def test_github_closing_references_as_github_documents_them():
    # docs.github.com "Linking a pull request to an issue": the table's examples.
    assert github.closing_references("Closes #10", "octo-org/octo-repo") == ["octo-org/octo-repo#10"]
    assert github.closing_references("Fixes octo-org/octo-repo#100", "a/b") == ["octo-org/octo-repo#100"]
    assert github.closing_references("Resolves #10, resolves #123, resolves octo-org/octo-repo#100", "a/b") == [
        "a/b#10", "a/b#123", "octo-org/octo-repo#100"]
    # Every keyword, any case, an optional colon; one keyword per reference.
    for word in ("close", "closes", "closed", "fix", "fixes", "fixed", "resolve", "resolves", "resolved", "FIXES", "Fixes:"):
        assert github.closing_references(f"{word} #7", "a/b") == ["a/b#7"], word
    assert github.closing_references("closes #4, #6 and #7", "a/b") == ["a/b#4"]
    assert github.closing_references("Refs #3; prefixes #4; fixing #5; related to #6", "a/b") == []
    assert github.closing_references("Fixes https://github.com/Acme/Platform/issues/42", "a/b") == ["acme/platform#42"]
    assert github.closing_references("Fixes https://evil.example/acme/platform/issues/42", "a/b") == []


def test_gitlab_closing_references_on_the_documented_example():
    # docs.gitlab.com "Managing issues", "Default closing pattern": closes #18-#22 and #23, not #17.
    message = ("Awesome commit message\n\nFix #20, Fixes #21 and Closes group/otherproject#22.\n"
               "This commit is also related to #17 and fixes #18, #19\n"
               "and https://gitlab.example.com/group/otherproject/-/issues/23.")
    assert sorted(gitlab.closing_references(message, "group/project")) == sorted([
        "group/project#18", "group/project#19", "group/project#20", "group/project#21",
        "group/otherproject#22", "group/otherproject#23"])
    # Its URL is a reference on its own instance only; "project#N" is a project in the same namespace.
    assert "group/otherproject#23" in gitlab.closing_references(message, "group/project", "gitlab.example.com")
    assert "group/otherproject#23" not in gitlab.closing_references(message, "group/project", "gitlab.com")
    assert gitlab.closing_references("Closes otherproject#5", "group/project") == ["group/otherproject#5"]
    assert gitlab.closing_references("Closes #4, #6, Related to #5", "g/p") == ["g/p#4", "g/p#6"]
    assert gitlab.closing_references("Implements #8 and closing #9", "g/p") == ["g/p#8", "g/p#9"]
    assert gitlab.closing_references("CLOSES #1", "g/p") == []  # GitLab's pattern: first letter only may be capital


# ------------------------------------------------------------------ links


@pytest.mark.parametrize("typed,tracker,key", [
    ("https://github.com/Acme-Corp/Platform-API/issues/42", "github", "acme-corp/platform-api#42"),
    ("<https://github.com/acme/platform/pull/7>", "github", "acme/platform#7"),
    ("<http://github.com/acme/platform/issues/42|github.com/acme/platform/issues/42>", "github", "acme/platform#42"),
    ("<https://acme.atlassian.net/browse/net-7|NET-7>", "jira", "NET-7"),
    ("https://gitlab.com/Group/Sub/Proj/-/issues/9", "gitlab", "group/sub/proj#9"),
    ("https://gitlab.com/group/proj/-/work_items/9", "gitlab", "group/proj#9"),
    ("https://gitlab.com/group/proj/-/merge_requests/3", "gitlab", "group/proj!3"),
    ("<https://linear.app/acme/issue/eng-12/title|ENG-12 title>", "linear", "ENG-12"),
])
def test_issue_urls_in_every_form_a_person_pastes(typed, tracker, key):
    ref = parse_issue_url(typed)
    assert (ref.tracker, ref.key) == (tracker, key)


@pytest.mark.parametrize("typed", ["<not a url>", "https://[bad/issues/1", "https://example.com/about", "ftp://github.com/a/b/issues/1", ""])
def test_other_text_is_not_an_issue(typed):
    assert parse_issue_url(typed) is None


def test_every_tracker_module_has_the_whole_interface():
    names = ["TRACKER", "SECRET_SETTING", "DELIVERY_HEADER", "parse_url", "normalise", "verify", "read",
             "poll_configured", "poll_request", "poll_events"]
    assert set(MODULES) == set(Tracker)
    for module in MODULES.values():
        assert all(hasattr(module, n) for n in names), module.__name__


# ------------------------------------------------------------------ vendor payloads through the app


async def test_github_vendor_examples_closed_reopened_and_transferred(bot):
    # The closed/reopened examples are Codertocat/Hello-World#1 (issue id 444500041).
    point_id = await file_and_link(bot, "spelling error", "https://github.com/codertocat/hello-world/issues/1")
    closed, reopened = fixture("github/issues.closed.json"), fixture("github/issues.reopened.json")
    closed["issue"]["updated_at"] = "2021-07-05T18:07:10Z"  # the derived example kept the reopen's later time
    await deliver(bot, "github", *tr.github("issues", closed))
    assert len(notices_to(bot, USER)) == 1 and point(bot, point_id).status == "resolved"
    assert (links(bot)[0].issue_id, links(bot)[0].project_id) == ("444500041", "186853002")
    await deliver(bot, "github", *tr.github("issues", reopened))
    assert point(bot, point_id).status == "linked"
    await deliver(bot, "github", *tr.github("issues", closed))  # older than the reopen: a replay
    assert len(notices_to(bot, USER)) == 1


async def test_github_vendor_example_transfer_is_followed(bot):
    # issues.transferred: octo-org/hello-world-npm#1 (id 512748900) became Codertocat/Hello-World#1.
    await file_and_link(bot, "a transferred issue", "https://github.com/octo-org/hello-world-npm/issues/1")
    await deliver(bot, "github", *tr.github("issues", fixture("github/issues.transferred.json")))
    [link] = links(bot)
    assert (link.key, link.issue_id) == ("codertocat/hello-world#1", "444500041")
    closed = fixture("github/issues.closed.json")
    await deliver(bot, "github", *tr.github("issues", closed))
    assert len(notices_to(bot, USER)) == 1


async def test_github_vendor_example_repository_rename_is_followed(bot):
    # repository.renamed: repository 186853261, now Octocoders/Hello-World; the example's "from"
    # is its current name, so the rename is shown with the old name this test linked.
    await file_and_link(bot, "a renamed repository", "https://github.com/octocoders/old-name/issues/5")
    renamed = fixture("github/repository.renamed.json")
    renamed["changes"]["repository"]["name"]["from"] = "Old-Name"
    await deliver(bot, "github", *tr.github("repository", renamed))
    assert [(lnk.key, lnk.project_id) for lnk in links(bot)] == [("octocoders/hello-world#5", "186853261")]
    closed = tr.github_issue("Octocoders/Hello-World", 5)
    await deliver(bot, "github", *tr.github("issues", closed))
    assert len(notices_to(bot, USER)) == 1


async def test_github_vendor_example_merged_pull_request(bot):
    merged = fixture("github/pull_request.closed.merged.json")
    repo, number = merged["repository"]["full_name"], merged["pull_request"]["number"]
    await file_and_link(bot, "readme typo", f"https://github.com/{repo}/pull/{number}")
    await file_and_link(bot, "another typo", f"https://github.com/{repo}/issues/1", user="U0OTHER001")
    merged["pull_request"]["body"] += "\n\nFixes #1"
    await deliver(bot, "github", *tr.github("pull_request", merged))
    assert len(notices_to(bot, USER)) == 1 and len(notices_to(bot, "U0OTHER001")) == 1


async def test_gitlab_vendor_examples_close_reopen_merge_and_move(bot):
    close, reopen = fixture("gitlab/issue.close.json"), fixture("gitlab/issue.reopen.json")
    path, iid = close["project"]["path_with_namespace"], close["object_attributes"]["iid"]
    point_id = await file_and_link(bot, "gitlab issue", f"https://gitlab.example.com/{path}/-/issues/{iid}")
    reopen["object_attributes"]["updated_at"] = "2013-12-03T17:30:00Z"  # after the close
    await deliver(bot, "gitlab", *tr.gitlab_signed(close))
    assert len(notices_to(bot, USER)) == 1 and point(bot, point_id).status == "resolved"
    await deliver(bot, "gitlab", *tr.gitlab_signed(reopen))
    assert point(bot, point_id).status == "linked"
    merge = fixture("gitlab/merge_request.merge.json")
    merge["object_attributes"]["description"] = f"Closes #{iid}"
    merge["object_attributes"]["updated_at"] = "2013-12-03T17:40:00Z"
    await deliver(bot, "gitlab", *tr.gitlab_signed(merge))
    assert len(notices_to(bot, USER)) == 2
    # Moved (constructed example: a close with moved_to_id) is not a fix; the new issue is followed.
    other = await file_and_link(bot, "moved issue", "https://gitlab.example.com/other/proj/-/issues/23", user="U0OTHER001")
    moved = fixture("gitlab/issue.close.moved.json")
    moved["project"]["path_with_namespace"] = "other/proj"
    await deliver(bot, "gitlab", *tr.gitlab_signed(moved))
    assert notices_to(bot, "U0OTHER001") == [] and point(bot, other).status == "linked"
    new = fixture("gitlab/issue.close.json")
    new["object_attributes"].update(id=302, iid=4, updated_at="2013-12-04T10:00:00Z")
    new["project"]["path_with_namespace"] = "new/home"
    await deliver(bot, "gitlab", *tr.gitlab_signed(new))
    assert len(notices_to(bot, "U0OTHER001")) == 1
    assert "new/home#4" in [lnk.key for lnk in links(bot)]


async def test_jira_vendor_shaped_examples_key_change_then_resolved(bot):
    await file_and_link(bot, "dashboard widget", "https://your-domain.atlassian.net/browse/ED-1")
    await deliver(bot, "jira", *tr.jira_signed(fixture("jira/issue_updated.key_change.json")))
    [link] = links(bot)
    assert (link.key, link.issue_id) == ("NEW-7", "10002")
    resolved = fixture("jira/issue_updated.resolved.json")
    resolved["issue"].update(id="10002", key="NEW-7")
    resolved["timestamp"] = 1704888000000 + 60_000
    await deliver(bot, "jira", *tr.jira_signed(resolved))
    assert len(notices_to(bot, USER)) == 1


async def test_linear_vendor_shaped_examples_completed_reopened_and_team_move(bot):
    completed, reopened = fixture("linear/issue.update.completed.json"), fixture("linear/issue.update.reopened.json")
    key = completed["data"]["identifier"]
    point_id = await file_and_link(bot, "foo bar", f"https://linear.app/example/issue/{key}/foo-bar")
    for payload in (completed, reopened):
        payload["webhookTimestamp"] = int(time.time() * 1000)  # signed fresh: the SDK refuses older than a minute
    await deliver(bot, "linear", *tr.linear_signed(completed))
    assert len(notices_to(bot, USER)) == 1
    await deliver(bot, "linear", *tr.linear_signed(reopened))
    assert point(bot, point_id).status == "linked"
    # Moved to team OPS: a new identifier, the old one in previousIdentifiers, the same UUID.
    moved = json.loads(json.dumps(completed))
    moved["data"].update(identifier="OPS-3", previousIdentifiers=[key], updatedAt="2030-01-01T00:00:00.000Z")
    await deliver(bot, "linear", *tr.linear_signed(moved))
    assert [lnk.key for lnk in links(bot)] == ["OPS-3"] and len(notices_to(bot, USER)) == 2
