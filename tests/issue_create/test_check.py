"""`platform-feedback check` (a real process, against the fake Slack and the fake trackers) says,
for each project in issues.projects, whether the token can create issues there, in the tracker
API's own words, one line each."""

from tests.issue_create import fake_trackers as ft
from tests.issue_create.test_create import trackers  # noqa: F401 (fixture)
from tests.runtime.test_config_cli import run_cli
from tests.runtime.test_first_hour import POLICY, all_right, env

PROJECTS = [{"tracker": "github", "project": "acme/platform", "areas": ["ci"]},
            {"tracker": "gitlab", "project": "acme/runners"},
            {"tracker": "jira", "project": "NET"},
            {"tracker": "linear", "project": "DOC"},
            {"tracker": "linear", "project": "OPS"}]


def tokens(url: str) -> dict:
    return {"GITHUB_TOKEN": ft.GITHUB_TOKEN, "GITHUB_API_URL": url + "/api/v3", "GITLAB_TOKEN": ft.GITLAB_TOKEN,
            "GITLAB_API_URL": url + "/api/v4", "JIRA_BASE_URL": url, "JIRA_EMAIL": ft.JIRA_EMAIL, "JIRA_API_TOKEN": ft.JIRA_TOKEN,
            "LINEAR_API_KEY": ft.LINEAR_KEY, "LINEAR_API_URL": url + "/graphql"}


def test_check_says_per_project_whether_the_token_can_create_issues(tmp_path, fake_slack, trackers):  # noqa: F811
    all_right(fake_slack)
    trackers.script("gitlab", "access", 404, {"message": "404 Project Not Found"})
    trackers.script("jira", "access", 200, {"permissions": {"CREATE_ISSUES": {"key": "CREATE_ISSUES", "havePermission": False}}})
    result = run_cli(tmp_path, "check", **env(tmp_path, fake_slack, {**POLICY, "issues": {"projects": PROJECTS}}, **tokens(trackers.url)))
    lines = [line for line in result.stdout.splitlines() if "issues.projects" in line]
    assert lines == [
        "✓ issues.projects GitHub acme/platform: can create issues",
        "✗ issues.projects GitLab acme/runners: HTTP 404: 404 Project Not Found",
        "✗ issues.projects Jira NET: the token's user lacks the Create Issues permission in this project",
        "✓ issues.projects Linear DOC: can create issues",
        "✗ issues.projects Linear OPS: no team with this key is visible to the API key",
    ], result.stdout
    assert result.returncode == 1


def test_check_names_the_setting_a_project_needs(tmp_path, fake_slack):
    all_right(fake_slack)
    result = run_cli(tmp_path, "check", **env(tmp_path, fake_slack, {**POLICY, "issues": {"projects": PROJECTS[:1]}}))
    assert "✗ issues.projects GitHub acme/platform: set GITHUB_TOKEN to create issues there" in result.stdout.splitlines()
