"""Issue #25, running it: the mistakes that looked fine and the messages that misled, each through
the real CLI process (tests/test_config_cli.run_cli) against the fake Slack where Slack is asked."""

import json
import re
from pathlib import Path

import pytest

from bot.runtime.config import load_policy
from bot.runtime.settings import ConfigError
from tests.fake_slack import TOKEN
from tests.runtime.test_config_cli import run_cli
from tests.slack_requests import SIGNING_SECRET

REPO = Path(__file__).resolve().parents[2]


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


# ---------------------------------------------------------------- item 5: settings that say what is wrong


@pytest.mark.parametrize("token, says", [
    ("xoxb-…", "SLACK_BOT_TOKEN is the placeholder 'xoxb-…': set it to your app's real token"),
    ("xoxb-...", "SLACK_BOT_TOKEN is the placeholder 'xoxb-...'"),
    ("xoxb-1234567890-abcdef ", "SLACK_BOT_TOKEN has spaces or a line break around it (pasted with a trailing space?): remove them"),
    ("xoxp-1234567890-abcdef", "must be a bot token starting with xoxb- (this one is a user token)"),
])
def test_a_bad_token_says_what_is_wrong_with_it(tmp_path, token, says):
    result = run_cli(tmp_path, "check", SLACK_BOT_TOKEN=token, SLACK_SIGNING_SECRET=SIGNING_SECRET)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert says in line, line


def test_with_nothing_set_every_missing_variable_is_named_at_once(tmp_path):
    result = run_cli(tmp_path, "serve")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert "SLACK_BOT_TOKEN is not set" in line and "SLACK_SIGNING_SECRET is not set" in line, line


def test_migrate_says_what_it_applied_and_names_the_database(tmp_path):
    first = run_cli(tmp_path, "migrate", DATABASE_URL=f"sqlite:///{tmp_path}/bot.db")
    assert first.returncode == 0, first.stderr
    assert re.fullmatch(rf"platform-feedback: applied (\d+) migration\(s\) to sqlite:///{tmp_path}/bot.db "
                        r"\(from an empty database to \w+\)\n", first.stdout), first.stdout
    again = run_cli(tmp_path, "migrate", DATABASE_URL=f"sqlite:///{tmp_path}/bot.db")
    assert again.stdout.startswith(f"platform-feedback: sqlite:///{tmp_path}/bot.db is up to date (revision ")
    assert again.stdout.endswith("nothing to apply\n")


def test_migrate_names_a_postgresql_database_without_its_password(tmp_path, pg_url):
    from sqlalchemy import make_url

    url = make_url(pg_url).set(password="s3cret-pw").render_as_string(hide_password=False)
    result = run_cli(tmp_path, "migrate", DATABASE_URL=url)  # the server trusts local connections: any password does
    assert result.returncode == 0, result.stderr
    assert "is up to date" in result.stdout and "***@" in result.stdout and "s3cret-pw" not in result.stdout + result.stderr


def test_report_in_an_empty_folder_says_there_is_no_database_and_creates_none(tmp_path):
    result = run_cli(tmp_path, "report")
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert "there is no database at platform-feedback.db" in line and "DATABASE_URL" in line
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- items 4, 5, 6: serve's start


def test_serve_no_migrate_on_an_unmigrated_database_refuses_to_start(tmp_path, fake_slack):
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{tmp_path}/bot.db")  # a database file, but never migrated
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE unrelated (x INTEGER)"))
    engine.dispose()
    from tests.runtime.test_serve_http import free_port

    result = run_cli(tmp_path, "serve", "--no-migrate", **slack_env(tmp_path, fake_slack, PORT=str(free_port()), HOST="127.0.0.1"))
    assert result.returncode == 2, result.stderr
    [problem] = [line for line in result.stderr.splitlines() if line.startswith("platform-feedback:")]
    assert "has no tables yet: run `platform-feedback migrate`" in problem and "Traceback" not in result.stderr


def test_a_taken_port_is_one_line_before_anything_is_migrated(tmp_path, fake_slack):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(tmp_path, "serve", **slack_env(tmp_path, fake_slack, PORT=str(port), HOST="127.0.0.1"))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("platform-feedback:")]
    assert line.startswith(f"platform-feedback: cannot listen on 127.0.0.1:{port} (") and "set PORT to a free port" in line
    assert not (tmp_path / "bot.db").exists()  # found before migrating


def test_a_second_serve_on_the_same_spool_or_sqlite_file_refuses(tmp_path, fake_slack):
    from tests.runtime.test_serve_http import free_port, serving

    database_url = f"sqlite:///{tmp_path}/bot.db"
    with serving(tmp_path, fake_slack, database_url, stop=False) as (_base, first):
        env = slack_env(tmp_path, fake_slack, DATABASE_URL=database_url, PORT=str(free_port()), HOST="127.0.0.1")
        same_spool = run_cli(tmp_path, "serve", **env)
        own_spool = run_cli(tmp_path, "serve", **env, EVENT_SPOOL_PATH="other.spool")
        first.terminate()
        first.wait(timeout=15)
    for result, says in [(same_spool, "platform-feedback-events.spool: each instance needs its own EVENT_SPOOL_PATH"),
                         (own_spool, "bot.db: SQLite takes one process at a time")]:
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        [line] = [line for line in result.stderr.splitlines() if line.startswith("platform-feedback:")]
        assert f"another `platform-feedback serve` (pid {first.pid}) uses " in line and says in line, line


def test_the_start_log_says_the_dashboard_is_off_and_a_wrong_signing_secret_is_a_warning_naming_it(tmp_path, fake_slack):
    import httpx

    from tests.runtime.test_serve_http import serving
    from tests.slack_requests import signed, slash_command

    with serving(tmp_path, fake_slack, f"sqlite:///{tmp_path}/bot.db") as base:
        body, headers = slash_command("the VPN drops every hour", fake_url=fake_slack.url)
        wrong = signed(body, secret="a-secret-from-another-app-0000", content_type=headers["content-type"])
        for _ in range(5):
            assert httpx.post(base + "/slack/events", content=body.encode(), headers=wrong).status_code == 401
        metrics = httpx.get(base + "/metrics").text
    assert 'pf_slack_signature_refused_total{reason="mismatch"} 5.0' in metrics
    records = [json.loads(line) for line in (tmp_path / "serve.log").read_text().splitlines() if line.startswith("{")]
    warnings = [r["message"] for r in records if r["level"] == "WARNING" and "SLACK_SIGNING_SECRET" in r["message"]]
    assert len(warnings) == 1 and "Basic Information > App Credentials" in warnings[0], warnings
    # Item 6: the start says the dashboard is off, and is quiet otherwise.
    info = [r["message"] for r in records if r["level"] in ("INFO", "WARNING")]
    assert any(m.startswith("dashboard: off (/dashboard answers 404): set DASHBOARD_TOKEN") for m in info), info
    assert not [m for m in info if "will be unused" in m or m.startswith("serving interpreter")], info


# ---------------------------------------------------------------- item 6: ask without targets


def _ask_policy(with_targets: bool):
    from bot.policy import Hosts, Policy, Targets, Triage
    from tests.targets.test_targets_surfaces import HOST, TARGETS, TRIAGE

    return Policy(hosts=Hosts(users=[HOST]), triage=Triage(channel=TRIAGE), targets=TARGETS if with_targets else Targets())


@pytest.fixture
def policy(request):
    return _ask_policy(request.param)


@pytest.mark.parametrize("policy", [False, True], indirect=True, ids=["no-targets", "targets"])
async def test_ask_speaks_of_paused_clocks_only_when_there_are_targets(bot, policy):
    from datetime import timedelta

    from storage.models import utcnow
    from tests.slack_requests import slash_command
    from tests.targets.test_targets_surfaces import HOST, add

    point_id = add(bot.db, created=utcnow() - timedelta(minutes=5))
    await bot.post(*slash_command(f"ask FB-{point_id} which runner were you on?", fake_url=bot.fake.url, user=HOST))
    await bot.drain()
    [answer] = [c.body["text"] for c in bot.fake.calls_to("response_url") if "Asked the reporter" in c.body.get("text", "")]
    assert ("clocks are paused" in answer) is policy.targets.enabled, answer
    if not policy.targets.enabled:
        assert answer == f"Asked the reporter of FB-{point_id}; their answer goes to the card's thread."


# ---------------------------------------------------------------- item 6: rough edges of the offline commands


@pytest.fixture
def filled_db(db, tmp_path):
    """A database with two reports: one long, one a formula; returns the CLI's environment."""
    from datetime import UTC, datetime, timedelta

    from tests.insight.test_insight import add_point

    now = datetime.now(UTC)
    with db.session() as s, s.begin():
        for text in ["the staging deploy pipeline hangs for twenty minutes before every single release candidate build",
                     '=HYPERLINK("https://evil.example","x")']:
            add_point(s, created=now - timedelta(days=1), reporters=[("U1", now - timedelta(days=1))], tags=("ci",), text=text)
    return {"DATABASE_URL": db.url}


def test_export_has_what_people_wrote_and_report_cuts_it_with_an_ellipsis(filled_db, tmp_path):
    import csv
    import io

    export = run_cli(tmp_path, "export", "--csv", "-", **filled_db)
    assert export.returncode == 0, export.stderr
    texts = sorted(r["text"] for r in csv.DictReader(io.StringIO(export.stdout)))
    assert texts == ["'=HYPERLINK(\"https://evil.example\",\"x\")",  # inert (tests/runtime/test_csv_injection.py)
                     "the staging deploy pipeline hangs for twenty minutes before every single release candidate build"]
    table = run_cli(tmp_path, "report", **filled_db).stdout
    [row] = [line for line in table.splitlines() if "staging deploy" in line]
    assert row.endswith("…") and "every single" not in row, row
    loop = {line.split("  ")[1].strip(): line for line in table.splitlines() if line.startswith("  reports per week")
            or line.startswith("  median")}
    assert all(re.search(r"(\d+\.\d|–)\s+(\d+\.\d|–)$", line) for line in loop.values()), loop
    assert re.search(r"reports per week\s+0\.5\s+0\.0$", table, re.M), table


@pytest.mark.parametrize("args", [["report", "--csv"], ["export", "--csv", "-"], ["export", "--json", "-"]])
def test_a_reader_that_stops_early_ends_the_command_quietly(filled_db, tmp_path, args):
    import os
    import subprocess
    import sys

    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), **filled_db}
    # `… | head` once head has what it wants: here a reader that reads nothing and is gone before the
    # command writes its first line (the interpreter takes far longer to start than `true` to end).
    command = " ".join([f"'{sys.executable}'", "-m", "bot.runtime.cli", *args]) + " | true; echo ${PIPESTATUS[0]}"
    result = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert "BrokenPipeError" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert result.stdout.strip() == "0"


def test_gitignore_keeps_the_databases_side_files_the_spool_and_secrets_out():
    import subprocess

    names = ["platform-feedback.db-wal", "platform-feedback.db-shm", "platform-feedback-events.spool",
             "platform-feedback-events.spool-wal", "platform-feedback-events.spool.lock", "platform-feedback.db.lock", ".env"]
    ignored = subprocess.run(["git", "check-ignore", *names], cwd=REPO, capture_output=True, text=True).stdout.split()
    assert sorted(ignored) == sorted(names)


@pytest.mark.parametrize("command, says", [("serve", "migrations unless --no-migrate"), ("check", "Changes nothing"),
                                           ("migrate", "how many it applied"), ("report", "Top friction"), ("jobs", "List the scheduled")])
def test_each_commands_help_says_what_it_does(command, says, capsys):
    # Issue #25, 6: `check --help`, `migrate --help`, `serve --help` showed the usage line only.
    from bot.runtime.cli import main

    with pytest.raises(SystemExit) as ended:
        main([command, "--help"])
    assert ended.value.code == 0
    assert says in " ".join(capsys.readouterr().out.split())
