"""Tracker webhooks, read into one shape: which issue, and did it close (fixed or not planned)
or reopen. Each parser takes the decoded JSON as the tracker documents it. No I/O here."""

import re
from dataclasses import dataclass
from enum import StrEnum

from bot.trackers import Tracker


class Outcome(StrEnum):
    fixed = "fixed"
    not_planned = "not_planned"
    reopened = "reopened"


@dataclass(frozen=True)
class IssueEvent:
    tracker: Tracker
    key: str
    outcome: Outcome
    url: str | None = None
    title: str | None = None


# GitHub's closing keywords: "Fixes #12", "closes acme/ci#3", "Resolved: #4".
_CLOSING = re.compile(
    r"\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\s*:?\s+(?:(?P<repo>[\w.-]+/[\w.-]+))?#(?P<n>\d+)", re.IGNORECASE
)
# GitLab's default closing pattern is much the same; it also allows full issue URLs, which we skip.
_GITLAB_CLOSING = re.compile(
    r"\b(?:close[sd]?|closing|fix(?:e[sd]|ing)?|resolve[sd]?|resolving|implement(?:s|ed|ing)?)\s*:?\s+(?:(?P<repo>[\w./-]+))?#(?P<n>\d+)",
    re.IGNORECASE,
)


def github(event_name: str, payload: dict) -> list[IssueEvent]:
    repo = payload["repository"]["full_name"]
    action = payload.get("action")
    if event_name == "issues" and action in ("closed", "reopened"):
        issue = payload["issue"]
        if action == "reopened":
            outcome = Outcome.reopened
        else:
            # state_reason: completed | not_planned | duplicate (GraphQL) | null on old closes.
            outcome = Outcome.not_planned if issue.get("state_reason") in ("not_planned", "duplicate") else Outcome.fixed
        return [IssueEvent(Tracker.github, f"{repo}#{issue['number']}", outcome, issue.get("html_url"), issue.get("title"))]
    if event_name == "pull_request" and action in ("closed", "reopened"):
        pr = payload["pull_request"]
        if action == "reopened":
            return [IssueEvent(Tracker.github, f"{repo}#{pr['number']}", Outcome.reopened, pr.get("html_url"), pr.get("title"))]
        if not pr.get("merged"):
            return []  # closed unmerged: nothing was fixed
        events = [IssueEvent(Tracker.github, f"{repo}#{pr['number']}", Outcome.fixed, pr.get("html_url"), pr.get("title"))]
        for m in _CLOSING.finditer(pr.get("body") or ""):
            events.append(IssueEvent(Tracker.github, f"{m['repo'] or repo}#{m['n']}", Outcome.fixed, pr.get("html_url"), pr.get("title")))
        return list(dict.fromkeys(events))
    return []


def gitlab(payload: dict) -> list[IssueEvent]:
    kind = payload.get("object_kind")
    project = payload["project"]["path_with_namespace"]
    attrs = payload["object_attributes"]
    action = attrs.get("action")
    if kind == "issue" and action in ("close", "reopen"):
        outcome = Outcome.reopened if action == "reopen" else Outcome.fixed
        return [IssueEvent(Tracker.gitlab, f"{project}#{attrs['iid']}", outcome, attrs.get("url"), attrs.get("title"))]
    if kind == "merge_request" and action == "merge":
        events = [IssueEvent(Tracker.gitlab, f"{project}!{attrs['iid']}", Outcome.fixed, attrs.get("url"), attrs.get("title"))]
        for m in _GITLAB_CLOSING.finditer(attrs.get("description") or ""):
            events.append(IssueEvent(Tracker.gitlab, f"{m['repo'] or project}#{m['n']}", Outcome.fixed, attrs.get("url"), attrs.get("title")))
        return list(dict.fromkeys(events))
    return []


def jira(payload: dict, *, not_planned_resolutions: frozenset[str]) -> list[IssueEvent]:
    issue = payload.get("issue") or {}
    key, fields = issue.get("key"), issue.get("fields") or {}
    if not key or payload.get("webhookEvent") not in ("jira:issue_updated", "jira:issue_created"):
        return []
    changes = {item.get("field"): item for item in (payload.get("changelog") or {}).get("items") or []}
    resolution = changes.get("resolution")
    if resolution is None:
        return []  # a resolution change is what closes or reopens an issue, on Cloud and Data Center
    url = _jira_browse_url(issue)
    if resolution.get("to") is None and not resolution.get("toString"):
        return [IssueEvent(Tracker.jira, key, Outcome.reopened, url, fields.get("summary"))]
    name = (resolution.get("toString") or "").strip().lower()
    outcome = Outcome.not_planned if name in not_planned_resolutions else Outcome.fixed
    return [IssueEvent(Tracker.jira, key, outcome, url, fields.get("summary"))]


def _jira_browse_url(issue: dict) -> str | None:
    self_url = issue.get("self") or ""
    m = re.match(r"^(https?://[^/]+(?:/jira)?)/rest/", self_url)
    return f"{m.group(1)}/browse/{issue['key']}" if m else None


def linear(payload: dict) -> list[IssueEvent]:
    if payload.get("type") != "Issue" or payload.get("action") != "update":
        return []
    data, before = payload.get("data") or {}, payload.get("updatedFrom") or {}
    if "stateId" not in before:
        return []  # the workflow state did not change
    state = (data.get("state") or {}).get("type")
    key, url, title = data.get("identifier"), data.get("url"), data.get("title")
    if not key:
        return []
    if state == "completed":
        return [IssueEvent(Tracker.linear, key, Outcome.fixed, url, title)]
    if state == "canceled":
        return [IssueEvent(Tracker.linear, key, Outcome.not_planned, url, title)]
    if before.get("completedAt") or before.get("canceledAt"):
        # updatedFrom holds the previous values: it was completed or canceled, and is not any more.
        return [IssueEvent(Tracker.linear, key, Outcome.reopened, url, title)]
    return []
