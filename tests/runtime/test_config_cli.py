"""Settings and team policy errors, the CLI as a real process, and models vs. migrations."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.policy import Policy
from bot.runtime.config import load_policy
from bot.runtime.settings import ConfigError, load_settings
from tests.fake_slack import TOKEN
from tests.slack_requests import SIGNING_SECRET

REPO = Path(__file__).resolve().parents[2]
ENV_NAMES = ["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "SLACK_API_URL",
             "DATABASE_URL", "PORT", "HOST", "CONFIG_FILE"]
GOOD = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET}


# ---------------------------------------------------------------- settings from the environment


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A clean environment in an empty working directory (no .env); returns a setter."""
    monkeypatch.chdir(tmp_path)
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)

    def set_env(**values):
        for name, value in values.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)

    set_env(**GOOD)
    return set_env


@pytest.mark.parametrize(
    "name, value",
    [
        ("SLACK_BOT_TOKEN", None),
        ("SLACK_BOT_TOKEN", "xoxp-a-user-token-123"),
        ("SLACK_SIGNING_SECRET", None),
        ("SLACK_APP_TOKEN", "xoxb-not-an-app-token"),
        ("DATABASE_URL", "mysql://root@localhost/feedback"),
        ("PORT", "eighty"),
        ("PORT", "0"),
        ("PORT", "70000"),
        ("SLACK_API_URL", "ftp://slack.example.com/api/"),
    ],
)
def test_bad_setting_is_one_line_naming_it(env, name, value):
    env(**{name: value})
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert name in message
    assert "\n" not in message and message.strip() == message


def test_good_settings_and_normalisation(env):
    env(DATABASE_URL="postgres://u:p@db.example.com/feedback", SLACK_API_URL="http://127.0.0.1:9/api", PORT="8080")
    settings = load_settings()
    assert settings.database_url == "postgresql+psycopg://u:p@db.example.com/feedback"
    assert settings.slack_api_url == "http://127.0.0.1:9/api/"
    assert settings.port == 8080 and not settings.socket_mode


def test_socket_mode_needs_no_signing_secret(env):
    env(SLACK_SIGNING_SECRET=None, SLACK_APP_TOKEN="xapp-1-A0APP-123-abc")
    settings = load_settings()
    assert settings.socket_mode and settings.slack_app_token == "xapp-1-A0APP-123-abc"


# ---------------------------------------------------------------- team policy YAML


@pytest.mark.parametrize(
    "yaml_text, expected",
    [
        ("intake:\n  emoji: ticket\n", "intake.emoji"),
        ("taxonomy:\n  categories:\n    - {id: Bad Id!, label: Bad}\n", "taxonomy.categories.0.id"),
        ("taxonomy:\n  categories:\n    - {id: ci, label: CI}\n    - {id: ci, label: Again}\n", "unique"),
    ],
    ids=["unknown-key", "bad-category-id", "duplicate-ids"],
)
def test_bad_policy_names_file_and_problem(tmp_path, yaml_text, expected):
    path = tmp_path / "policy.yml"
    path.write_text(yaml_text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    message = str(info.value)
    assert str(path) in message and expected in message and "\n" not in message


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "policy.yml"
    path.write_text("reference_prefix: FB\nintake:\n\treaction: x\n", encoding="utf-8")  # a tab indent
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    assert str(info.value) == f"CONFIG_FILE {path}: not valid YAML at line 3: found character '\\t' that cannot start any token."


def test_every_policy_problem_at_once_with_did_you_mean(tmp_path):
    """Issue #11 item 9: all problems, not the first; a misspelt key gets the closest known key."""
    path = tmp_path / "policy.yml"
    path.write_text("triage:\n  chanel: C0TRIAGE1\nhosts:\n  users: [nobody]\nreference_prefix: fb\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    message = str(info.value)
    assert "3 problems" in message and "\n" not in message
    assert "triage.chanel: unknown key (did you mean 'channel'?)" in message
    assert "hosts.users.0" in message and "reference_prefix" in message


def test_did_you_mean_inside_a_list_item(tmp_path):
    path = tmp_path / "policy.yml"
    path.write_text("office_hours:\n  sessions: [{weekday: tue, time: '14:00', chanel: C0OFFICE01}]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"office_hours.sessions.0.chanel: unknown key \(did you mean 'channel'\?\)"):
        load_policy(path)


def test_every_settings_problem_at_once(env):
    env(PORT="eighty", DATABASE_URL="mysql://x", SLACK_API_URL="ftp://x")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert all(name in message for name in ("PORT", "DATABASE_URL", "SLACK_API_URL")) and "\n" not in message


def test_short_signing_secret_says_it_is_too_short(env):
    """Issue #11 item 5: set but short is not "required"."""
    env(SLACK_SIGNING_SECRET="abc")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "too short (3 characters)" in str(info.value) and "required" not in str(info.value)


def test_missing_policy_file(tmp_path):
    with pytest.raises(ConfigError, match="CONFIG_FILE .*nope.yml: cannot read it"):
        load_policy(tmp_path / "nope.yml")


def test_example_policy_is_valid_and_is_the_defaults():
    assert load_policy(REPO / "platform-feedback.example.yml") == Policy()


# ---------------------------------------------------------------- the CLI as a real process


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), **env}
    return subprocess.run([sys.executable, "-m", "bot.runtime.cli", *args], cwd=tmp_path, env=full_env,
                          capture_output=True, text=True, timeout=60)


def assert_config_failure(result: subprocess.CompletedProcess, name: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {result.stderr!r}"
    assert name in lines[0]


def test_serve_without_bot_token_exits_2_with_one_line(tmp_path):
    assert_config_failure(run_cli(tmp_path, "serve", SLACK_SIGNING_SECRET=SIGNING_SECRET), "SLACK_BOT_TOKEN")


def test_serve_with_invalid_policy_file_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "team.yml"
    bad.write_text("intake:\n  emoji: ticket\n", encoding="utf-8")
    result = run_cli(tmp_path, "serve", **GOOD, CONFIG_FILE=str(bad), DATABASE_URL=f"sqlite:///{tmp_path}/x.db")
    assert_config_failure(result, "CONFIG_FILE")


def test_migrate_with_unreachable_postgres_exits_2_with_one_line(tmp_path):
    result = run_cli(tmp_path, "migrate", DATABASE_URL="postgresql://postgres@127.0.0.1:1/test")
    assert_config_failure(result, "DATABASE_URL")


def test_jobs_and_run_job_from_the_cli(tmp_path):
    (tmp_path / "policy.yml").write_text(
        "office_hours:\n  sessions: [{weekday: tue, time: '14:00', timezone: Europe/Berlin, channel: C0OFFICE01}]\n"
    )
    env = {"SLACK_BOT_TOKEN": "xoxb-1234567890", "SLACK_SIGNING_SECRET": "signing-secret-1",
           "CONFIG_FILE": "policy.yml", "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db"}
    listed = run_cli(tmp_path, "jobs", **env)
    assert listed.returncode == 0
    on = {line.split()[0]: line.split(None, 1)[1] for line in listed.stdout.splitlines() if "off:" not in line}
    assert on == {"office_hours.agenda:C0OFFICE01:tue-14:00": "weekly tue 13:00 Europe/Berlin",
                  "office_hours.summary:C0OFFICE01:tue-14:00": "weekly tue 15:00 Europe/Berlin",
                  "progress.updates": "daily 15:00 UTC"}  # the daily batch of relayed updates (issue #28), on by default
    unknown = run_cli(tmp_path, "run-job", "office_hours.nope", **env)
    assert unknown.returncode == 2 and "platform-feedback jobs" in unknown.stderr and "Traceback" not in unknown.stderr
    bad_time = run_cli(tmp_path, "run-job", "office_hours.agenda:C0OFFICE01:tue-14:00", "--at", "tuesday", **env)
    assert bad_time.returncode == 2 and "--at" in bad_time.stderr


NO_SLACK = {"CONFIG_FILE": str(REPO / "platform-feedback.example.yml")}


def test_jobs_lists_every_job_and_what_is_off_without_slack(tmp_path):
    """Issue #25, 6: `jobs` needs no Slack credentials, and says of each job when it runs or why it is off."""
    listed = run_cli(tmp_path, "jobs", **NO_SLACK, DATABASE_URL=f"sqlite:///{tmp_path}/bot.db")
    assert listed.returncode == 0, listed.stderr
    lines = dict(line.split(None, 1) for line in listed.stdout.splitlines())
    assert lines["progress.updates"] == "daily 15:00 UTC"
    assert lines["closing.deliveries"].startswith("off: no tracker webhook secret is set (GITHUB_WEBHOOK_SECRET")
    assert lines["closing.poll"] == "off: closing.poll_minutes is 0 in the team policy"
    assert lines["surveys.tick"] == "off: the team policy has no surveys"
    assert lines["usage.tick"] == "off: usage.capabilities is empty in the team policy"
    assert lines["retention.purge"] == "off: retention.friction_days is not set in the team policy"
    assert not (tmp_path / "bot.db").exists() or (tmp_path / "bot.db").stat().st_size == 0  # listing touches no database

    policy = tmp_path / "policy.yml"
    policy.write_text("retention: {friction_days: 30}\nclosing: {poll_minutes: 15}\nusage: {capabilities: [{name: deploy}]}\n"
                      "surveys: [{name: pulse, questions: [{id: nps, kind: nps, text: 'Recommend us?'}], "
                      "audience: {channels: [C0ENG00001]}, schedule: '0 10 * * mon'}]\n")
    on = run_cli(tmp_path, "jobs", CONFIG_FILE=str(policy), GITHUB_WEBHOOK_SECRET="webhook-secret-1", GITHUB_TOKEN="ghp_token",
                 DATABASE_URL=f"sqlite:///{tmp_path}/bot.db")
    assert on.returncode == 0, on.stderr
    lines = dict(line.split(None, 1) for line in on.stdout.splitlines())
    assert {k: lines[k] for k in ("closing.deliveries", "closing.poll", "surveys.tick", "usage.tick", "retention.purge", "survey:pulse")} == {
        "closing.deliveries": "every minute", "closing.poll": "every 15 minutes", "surveys.tick": "every 5 minutes", "usage.tick": "every minute",
        "retention.purge": "daily 03:00 UTC", "survey:pulse": "weekly mon 10:00 UTC"}


def test_run_job_without_slack(tmp_path):
    env = {**NO_SLACK, "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db", "GITHUB_WEBHOOK_SECRET": "webhook-secret-1"}
    ran = run_cli(tmp_path, "run-job", "closing.deliveries", "--at", "2026-12-01T10:00:00+00:00", **env)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "platform-feedback: closing.deliveries ran (nothing to post)"
    again = run_cli(tmp_path, "run-job", "closing.deliveries", "--at", "2026-12-01T10:00:00+00:00", **env)
    assert again.stdout.strip() == "platform-feedback: closing.deliveries had already run for that occurrence"
    off = run_cli(tmp_path, "run-job", "closing.deliveries", **NO_SLACK, DATABASE_URL=f"sqlite:///{tmp_path}/bot.db")
    assert off.returncode == 2 and off.stderr.strip().startswith("platform-feedback: closing.deliveries is off (no tracker webhook secret")
    nonsense = run_cli(tmp_path, "run-job", "nonsense", **env)
    assert nonsense.returncode == 2 and "Traceback" not in nonsense.stderr
    assert nonsense.stderr.splitlines() == ["platform-feedback: no job named 'nonsense'; `platform-feedback jobs` lists them."]


def test_run_job_without_a_token_queues_for_the_serving_bot(tmp_path, fake_slack):
    """No SLACK_BOT_TOKEN: the job's messages stay queued (pending) for the bot that serves, and nothing reaches Slack."""
    import sqlite3

    (tmp_path / "policy.yml").write_text(
        "office_hours:\n  sessions: [{weekday: tue, time: '14:00', channel: C0OFFICE01}]\n  rotation: [U0HOST0001]\n")
    env = {"CONFIG_FILE": "policy.yml", "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db", "SLACK_API_URL": fake_slack.url + "/api/"}
    ran = run_cli(tmp_path, "run-job", "office_hours.agenda:C0OFFICE01:tue-14:00", "--at", "2026-11-24T14:00:00+00:00", **env)
    assert ran.returncode == 0, ran.stderr
    assert re.fullmatch(r"platform-feedback: office_hours\.agenda:C0OFFICE01:tue-14:00 ran; (\d+) message\(s\) queued "
                        r"\(no SLACK_BOT_TOKEN here: the running bot sends them\)", ran.stdout.strip()), ran.stdout
    queued = int(re.search(r"ran; (\d+)", ran.stdout).group(1))
    with sqlite3.connect(tmp_path / "bot.db") as conn:
        statuses = [s for (s,) in conn.execute("SELECT status FROM outbox_message")]
    assert queued >= 1 and statuses == ["pending"] * queued
    assert fake_slack.calls == []
