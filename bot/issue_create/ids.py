"""The ids of the create-issue surfaces (card and App Home button, modal), in one place. The title
input's member is ``issue_title``: a member named ``title`` would hide ``str.title``."""

from enum import StrEnum


class IssueAction(StrEnum):
    open = "issue_create_open"  # the host-only "Create issue" button; value: the report's id
    project = "issue_create_project"
    issue_title = "issue_create_title"
    description = "issue_create_description"
    labels = "issue_create_labels"


class IssueBlock(StrEnum):
    project = "issue_create_project"
    issue_title = "issue_create_title"
    description = "issue_create_description"
    labels = "issue_create_labels"
    problem = "issue_create_problem"


class IssueCallback(StrEnum):
    modal = "issue_create_modal"


# How each tracker is named to people (modal options, error lines).
TRACKER_NAMES = {"github": "GitHub", "gitlab": "GitLab", "jira": "Jira", "linear": "Linear"}
