"""Each tracker module reads progress from its documented payloads (tests/world, our own files
shaped from the vendors' webhook pages): started events, and comments starting with the policy's
marker as updates (others stay unread, as before); the marker off: nothing relayed."""

import json
from pathlib import Path

import pytest

from bot.issue_create.policy import IssuePolicy, Progress
from bot.policy import Policy
from bot.trackers import github, gitlab, jira, linear
from bot.trackers.base import Outcome

WORLD = Path(__file__).resolve().parent.parent / "world"
ON, OFF = Policy(), Policy(issues=IssuePolicy(progress=Progress(updates=False)))


def world(name: str) -> dict:
    return json.loads((WORLD / name).read_text())


def comment_payloads(text: str) -> dict:
    note = world("gitlab/note.issue.json")
    note["object_attributes"]["note"] = text
    comment = world("linear/comment.create.json")
    comment["data"]["body"] = text
    hub = world("github/issue_comment.created.json")
    hub["comment"]["body"] = text
    hub["issue"].pop("pull_request", None)
    jira_comment = {"timestamp": 1764583500000, "webhookEvent": "comment_created",
                    "comment": {"id": "10042", "body": text, "created": "2026-12-01T10:05:00.000+0000",
                                "author": {"accountId": "5b10a2844c20165700ede21g"}},
                    "issue": {"id": "10001", "key": "NET-7", "self": "https://acme.atlassian.net/rest/api/2/issue/10001",
                              "fields": {"summary": "VPN drops hourly"}}}
    return {"github": hub, "gitlab": note, "jira": jira_comment, "linear": comment}


def read(tracker: str, payload: dict, policy: Policy):
    body = json.dumps(payload).encode()
    if tracker == "github":
        return github.read(body, {"x-github-event": "issue_comment", "content-type": "application/json"}, policy)
    return {"gitlab": gitlab, "jira": jira, "linear": linear}[tracker].read(body, {}, policy)


@pytest.mark.parametrize("tracker", ["github", "gitlab", "jira", "linear"])
def test_a_marked_comment_is_an_update_and_others_are_not_read(tracker):
    [event] = read(tracker, comment_payloads("  /notify-reporters  Rolled back; a fix follows.")[tracker], ON)
    assert event.outcome == Outcome.update and event.note == "Rolled back; a fix follows." and event.note_id
    assert event.issue_id
    assert not read(tracker, comment_payloads("Rolled back; a fix follows.")[tracker], ON)
    assert not read(tracker, comment_payloads("/notify-reportersX no")[tracker], ON)
    assert not read(tracker, comment_payloads("/notify-reporters off")[tracker], OFF)


def test_started_from_the_documented_payloads():
    in_progress = world("jira/issue_updated.in_progress.json")
    assert Outcome.started in [e.outcome for e in jira.read(json.dumps(in_progress).encode(), {}, ON)]
    opened = world("gitlab/merge_request.open.json")  # its description names an issue ("Closes #23")
    started = gitlab.read(json.dumps(opened).encode(), {}, ON)
    assert started and all(e.outcome == Outcome.started and "#" in e.key for e in started)
    completed = world("linear/issue.update.completed.json")
    assert Outcome.started not in [e.outcome for e in linear.read(json.dumps(completed).encode(), {}, ON)]
    assert github.mentioned("Fixes #1; see acme/other#2 and https://github.com/acme/p/issues/3, not `#4`", "acme/p") == [
        "acme/p#1", "acme/other#2", "acme/p#3"]
