"""Issue #25, running it: the mistakes that looked fine and the messages that misled, each through
the real CLI process (tests/test_config_cli.run_cli) against the fake Slack where Slack is asked."""

import json
import re
from pathlib import Path

import pytest

from bot.runtime.config import ConfigError, load_policy
from tests.fake_slack import TOKEN
from tests.slack_requests import SIGNING_SECRET
from tests.test_config_cli import run_cli

REPO = Path(__file__).resolve().parent.parent


def slack_env(tmp_path: Path, fake, **extra) -> dict:
    return {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.url + "/api/",
            "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db", **extra}


# ---------------------------------------------------------------- item 5: names where ids belong


@pytest.mark.parametrize("yaml_text, where, what", [
    ('triage:\n  channel: "#platform-triage"\n', "triage.channel: '#platform-triage'", "channel id (C…), shown in channel details > About"),
    ('hosts:\n  users: ["@alice"]\n', "hosts.users.0: '@alice'", "member id (U…)"),
    ('hosts:\n  usergroup: "@platform-team"\n', "hosts.usergroup: '@platform-team'", "user group id (S…)"),
])
def test_a_name_where_an_id_belongs_says_where_the_id_is(tmp_path, yaml_text, where, what):
    path = tmp_path / "policy.yml"
    path.write_text(yaml_text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    message = str(info.value)
    assert f"{where} is a name: use the {what}" in message and "platform-feedback check" in message
    assert "pattern" not in message and "\n" not in message


def test_check_looks_the_names_up_and_says_which_id_to_write(tmp_path, fake_slack):
    fake_slack.channels.update({"C0TRIAGE01": {"name": "platform-triage", "is_member": True},
                                "C0OTHER001": {"name": "general", "is_member": True}})
    fake_slack.users["U0ALICE001"] = {"name": "alice"}
    fake_slack.usergroups["S0TEAM0001"] = ["U0ALICE001"]
    fake_slack.usergroup_handles["S0TEAM0001"] = "platform-team"
    (tmp_path / "platform-feedback.yml").write_text(
        'hosts:\n  users: ["@alice"]\n  usergroup: "@platform-team"\ntriage:\n  channel: "#platform-triage"\n'
        'help_channel:\n  channel: "#nowhere"\n', encoding="utf-8")
    result = run_cli(tmp_path, "check", **slack_env(tmp_path, fake_slack))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "✗ triage.channel: '#platform-triage' is C0TRIAGE01: write C0TRIAGE01 there instead of the name" in lines
    assert "✗ hosts.users.0: '@alice' is U0ALICE001: write U0ALICE001 there instead of the name" in lines
    assert "✗ hosts.usergroup: '@platform-team' is S0TEAM0001: write S0TEAM0001 there instead of the name" in lines
    assert any(line.startswith("✗ help_channel.channel: no channel named '#nowhere'") for line in lines)
    assert lines[-1] == f"{len(lines) - 1} problem(s) to fix before serving."


# ---------------------------------------------------------------- item 4: a Socket Mode token Slack refuses


def test_check_asks_slack_about_the_app_token(tmp_path, fake_slack):
    refused = run_cli(tmp_path, "check", **slack_env(tmp_path, fake_slack, SLACK_APP_TOKEN="xapp-1-A0-1-refused"))
    assert refused.returncode == 1, refused.stdout
    [line] = [line for line in refused.stdout.splitlines() if "SLACK_APP_TOKEN" in line]
    assert line.startswith("✗") and "invalid_auth" in line and "connections:write" in line
    assert "Ready" not in refused.stdout
    fake_slack.tokens["xapp-1-A0-1-good"] = {}
    accepted = run_cli(tmp_path, "check", **slack_env(tmp_path, fake_slack, SLACK_APP_TOKEN="xapp-1-A0-1-good"))
    assert "✓ SLACK_APP_TOKEN: Slack opens Socket Mode connections for it" in accepted.stdout.splitlines()
    assert fake_slack.calls_to("apps.connections.open")
