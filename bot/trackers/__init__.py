"""Tracker issue links: recognise a URL and give it a canonical key.

GitHub (github.com or Enterprise): owner/repo#12 (issues and pull requests share numbers).
GitLab: group/project#12 for issues, group/project!12 for merge requests.
Jira (Cloud or Data Center): PROJ-123. Linear: ENG-123.
"""

import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit


class Tracker(StrEnum):
    github = "github"
    gitlab = "gitlab"
    jira = "jira"
    linear = "linear"


@dataclass(frozen=True)
class IssueRef:
    tracker: Tracker
    key: str
    url: str


_GITLAB = re.compile(r"^/(?P<project>[\w.-]+(?:/[\w.-]+)+)/-/(?P<kind>issues|merge_requests)/(?P<n>\d+)/?$")
_GITHUB = re.compile(r"^/(?P<owner>[\w.-]+)/(?P<repo>[\w.-]+)/(?P<kind>issues|pull)/(?P<n>\d+)/?$")
_JIRA = re.compile(r"^(?:/jira)?/browse/(?P<key>[A-Z][A-Z0-9_]+-\d+)/?$")
_LINEAR = re.compile(r"^/[\w-]+/issue/(?P<key>[A-Z][A-Z0-9]+-\d+)(?:/[\w-]*)?/?$")


def parse_issue_url(url: str) -> IssueRef | None:
    """The issue a URL points at, or None if it is not a tracker issue we know."""
    url = url.strip().strip("<>")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 3000:
        return None
    host, path = parts.hostname.lower(), parts.path
    clean = f"{parts.scheme}://{parts.netloc}{path}"
    if host == "linear.app":
        m = _LINEAR.match(path)
        return IssueRef(Tracker.linear, m["key"], clean) if m else None
    if m := _GITLAB.match(path):
        sep = "#" if m["kind"] == "issues" else "!"
        return IssueRef(Tracker.gitlab, f"{m['project']}{sep}{m['n']}", clean)
    if m := _GITHUB.match(path):
        # github.com, or a GitHub Enterprise host serving the same paths.
        return IssueRef(Tracker.github, f"{m['owner']}/{m['repo']}#{m['n']}", clean)
    if m := _JIRA.match(path):
        return IssueRef(Tracker.jira, m["key"], clean)
    return None
