"""Issue #11, the first hour: `check`, serve's start-up checks, and the CLI's answers when something
is not set up yet. Each as a real process against the fake Slack (tests/fake_slack.py)."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fake_slack import TOKEN
from tests.runtime.test_config_cli import run_cli
from tests.runtime.test_serve_http import free_port, serving, stop_process
from tests.slack_requests import SIGNING_SECRET
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]

POLICY = {
    "hosts": {"users": ["U0HOST0001"], "usergroup": "S0HOSTS001"},
    "triage": {"channel": "C0TRIAGE01"},
    "closing": {"announce_channel": "C0ANNOUNCE"},
    "surveys": [{"name": "pulse", "questions": [{"id": "nps", "kind": "nps", "text": "Recommend?"}],
                 "audience": {"channels": ["C0ENG00001"]}}],
}


def env(tmp_path: Path, fake, policy: dict | None = POLICY, **extra) -> dict:
    values = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.url + "/api/",
              "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db", **extra}
    if policy is not None:
        (tmp_path / "policy.yml").write_text(json.dumps(policy))
        values["CONFIG_FILE"] = "policy.yml"
    return values


def all_right(fake) -> None:
    fake.channels.update({"C0TRIAGE01": {"name": "platform-triage", "is_private": False, "is_member": True},
                          "C0ANNOUNCE": {"name": "platform-news", "is_private": False, "is_member": True},
                          "C0ENG00001": {"name": "engineering", "is_private": False, "is_member": False}})
    fake.users["U0HOST0001"] = {}
    fake.usergroups["S0HOSTS001"] = ["U0HOST0001", "U0HOST0002"]


def test_check_passes_when_all_is_right(tmp_path, fake_slack):
    all_right(fake_slack)
    result = run_cli(tmp_path, "check", **env(tmp_path, fake_slack))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert not [line for line in lines if line.startswith("✗")], result.stdout
    assert any(line.startswith("✓ token: bot UBOT00001") for line in lines)
    assert "✓ triage.channel C0TRIAGE01 (#platform-triage): the bot is a member" in lines
    assert "✓ hosts.usergroup S0HOSTS001: 2 member(s)" in lines
    assert lines[-1] == "Ready: `platform-feedback serve`."


def test_check_reports_membership_scope_and_user_group_each_in_one_line(tmp_path, fake_slack):
    all_right(fake_slack)
    fake_slack.channels["C0ANNOUNCE"]["is_member"] = False
    fake_slack.scopes.remove("usergroups:read")
    del fake_slack.usergroups["S0HOSTS001"]
    result = run_cli(tmp_path, "check", **env(tmp_path, fake_slack))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    blocking = [line for line in result.stdout.splitlines() if line.startswith("✗")]
    assert len(blocking) == 3, result.stdout
    membership, scopes, group = (next(line for line in blocking if word in line)
                                 for word in ("C0ANNOUNCE", "scopes", "S0HOSTS001"))
    assert "not a member" in membership and "/invite @platform-feedback in #platform-news" in membership
    assert "missing usergroups:read" in scopes
    assert "unknown user group" in group
    assert "3 problem(s)" in result.stdout


def test_check_with_a_refused_token_or_unknown_ids(tmp_path, fake_slack):
    refused = run_cli(tmp_path, "check", **env(tmp_path, fake_slack, SLACK_BOT_TOKEN="xoxb-revoked-0000"))
    assert refused.returncode == 1 and "invalid_auth" in refused.stdout and "OAuth & Permissions" in refused.stdout
    unknown = run_cli(tmp_path, "check", **env(tmp_path, fake_slack))  # nothing in the fake: every id unknown
    blocking = [line for line in unknown.stdout.splitlines() if line.startswith("✗")]
    assert unknown.returncode == 1
    assert any("C0TRIAGE01: channel_not_found" in line for line in blocking)
    assert any("U0HOST0001: user_not_found" in line for line in blocking)


# ---------------------------------------------------------------- serve's start-up


def test_serve_with_a_refused_bot_token_exits_2_with_one_line(tmp_path, fake_slack):
    result = run_cli(tmp_path, "serve", **env(tmp_path, fake_slack, SLACK_BOT_TOKEN="xoxb-revoked-0000", PORT=str(free_port())))
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if "SLACK_BOT_TOKEN" in line]
    assert len(errors) == 1 and "invalid_auth" in errors[0] and "Traceback" not in result.stderr


def test_socket_mode_with_a_refused_app_token_exits_2_with_one_line(tmp_path, fake_slack):
    result = run_cli(tmp_path, "serve", **env(tmp_path, fake_slack, SLACK_APP_TOKEN="xapp-1-A0-1-refused"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "connecting to Slack over Socket Mode" in result.stderr
    [error] = [line for line in result.stderr.splitlines() if "SLACK_APP_TOKEN" in line]
    assert "invalid_auth" in error and "connections:write" in error and "Traceback" not in result.stderr


def test_socket_mode_backs_off_with_one_line_each_while_slack_is_unreachable(tmp_path):
    port = free_port()  # nothing listens there
    values = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_APP_TOKEN": "xapp-1-A0-1-x", "SLACK_API_URL": f"http://127.0.0.1:{port}/api/",
              "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db", "PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bot.runtime.cli", "serve"], cwd=tmp_path, env=values, stdout=out, stderr=out)
    try:
        wait_for(lambda: log.read_text().count("trying again in") >= 3, what="three 'trying again in' lines", interval=0.2)
    finally:
        stop_process(proc, signal.SIGINT)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    retries = [r["message"] for r in lines if "trying again in" in r["message"]]
    assert retries[:3] and [m.rsplit("in ", 1)[1] for m in retries[:3]] == ["1 s", "2 s", "4 s"], log.read_text()
    assert "Traceback" not in log.read_text()


def test_serve_logs_the_policy_it_loaded_and_warns_without_hosts(tmp_path, fake_slack, monkeypatch):
    with serving(tmp_path, fake_slack, f"sqlite:///{tmp_path}/bot.db"):
        pass
    records = [json.loads(line) for line in (tmp_path / "serve.log").read_text().splitlines() if line.strip()]
    messages = {r["message"]: r["level"] for r in records}
    summary = next(m for m in messages if m.startswith("no policy file"))
    assert "0 host(s)" in summary and "triage channel none" in summary
    assert any(m.startswith("no hosts") and level == "WARNING" for m, level in messages.items())
    assert any(m.startswith("no triage channel") and level == "WARNING" for m, level in messages.items())
    assert "SLACK_BOT_TOKEN: bot UBOT00001 in workspace T0TEAM001" in messages
    assert len(fake_slack.calls_to("auth.test")) >= 1


# ---------------------------------------------------------------- the CLI before anything is set up


def test_version():
    result = subprocess.run([sys.executable, "-m", "bot.runtime.cli", "--version"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0 and result.stdout.startswith("platform-feedback 0.")


@pytest.mark.parametrize("args", [["report"], ["export", "--csv", "-"], ["export", "--json", "-"], ["forget", "U0PERSON01"]])
def test_an_unmigrated_database_says_run_migrate(tmp_path, args):
    result = run_cli(tmp_path, *args)  # an empty folder: the default sqlite:///platform-feedback.db
    assert result.returncode == 2
    assert result.stdout == ""  # no CSV header before the error
    [line] = result.stderr.splitlines()
    assert "run `platform-feedback migrate`" in line


def test_demo_on_a_busy_port_fails_before_printing_a_url(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(tmp_path, "demo", "--port", str(port), "--db", str(tmp_path / "demo.db"))
    assert result.returncode == 2 and "http://" not in result.stdout
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "demo.db").exists()  # nothing filled for nothing


def test_survey_send_with_slack_unreachable_is_one_line(tmp_path):
    policy = {"surveys": POLICY["surveys"]}
    (tmp_path / "policy.yml").write_text(json.dumps(policy))
    values = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "CONFIG_FILE": "policy.yml",
              "SLACK_API_URL": f"http://127.0.0.1:{free_port()}/api/", "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db"}
    result = run_cli(tmp_path, "survey", "send", "pulse", **values)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    problems = [line for line in result.stderr.splitlines() if line.startswith("platform-feedback:")]
    assert len(problems) == 1 and "the running bot retries" in problems[0]


def test_run_job_says_queued_when_slack_did_not_take_the_post(tmp_path, fake_slack):
    policy = {"office_hours": {"sessions": [{"weekday": "tue", "time": "14:00", "channel": "C0OFFICE01"}], "rotation": ["U0HOST0001"]}}
    job, at = "office_hours.agenda:C0OFFICE01:tue-14:00", "2026-11-24T14:00:00+00:00"
    fake_slack.fail_when = lambda method, body: (503, "down", {}) if method == "chat.postMessage" else None
    queued = run_cli(tmp_path, "run-job", job, "--at", at, **env(tmp_path, fake_slack, policy))
    assert queued.returncode == 0, queued.stderr
    assert re.search(r"ran; (\d+) of \1 message\(s\) queued, not sent yet", queued.stdout), queued.stdout
    fake_slack.fail_when = None
    sent = run_cli(tmp_path, "run-job", job, "--at", "2026-12-01T14:00:00+00:00", **env(tmp_path, fake_slack, policy))
    assert "ran; " in sent.stdout and "message(s) sent" in sent.stdout and "queued" not in sent.stdout, sent.stdout


def test_socket_mode_reconnect_failures_are_one_line(caplog):
    """slack_sdk logs each failed reconnect with logger.exception (a traceback every ~10 s): one line instead."""
    import logging

    from bot.runtime.serving import _OneLine

    try:
        raise ConnectionResetError("connection reset by peer")
    except ConnectionResetError as exc:
        with caplog.at_level(logging.INFO):
            _OneLine(logging.getLogger("slack_sdk.socket_mode"), {}).exception(f"Failed to connect (error: {exc}); Retrying...")
    [record] = caplog.records
    assert record.levelname == "WARNING" and record.exc_info is None and "connection reset" in record.getMessage()


# ---------------------------------------------------------------- issue #25: the README's Set it up, as written


def test_the_readmes_set_it_up_path(tmp_path, fake_slack):
    """README.md *Set it up*, HTTP variant, with the installed `platform-feedback` in an empty folder:
    `init > manifest.yml`, fill the policy's ids and the .env, `check`, `serve`, and a signed slash
    command answered with its reference. Nothing but the folder's files configures it (no CONFIG_FILE,
    no Slack settings in the environment). .ci/first_hour does the same on a fresh `pip install .`."""
    import httpx

    from tests.slack_requests import slash_command

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "platform-feedback init > manifest.yml" in readme and "platform-feedback check" in readme
    bin_ = Path(sys.executable).parent / "platform-feedback"
    folder = tmp_path / "bot"
    folder.mkdir()
    base_env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(bin_), *args], cwd=folder, env=base_env, capture_output=True, text=True, timeout=120)

    init = run("init")
    assert init.returncode == 0, init.stderr
    (folder / "manifest.yml").write_text(init.stdout)
    assert "/platform-feedback" in init.stdout and (folder / "platform-feedback.yml").exists()
    # Step 2: the policy's ids, as a person fills them in the commented file.
    policy = (folder / "platform-feedback.yml").read_text(encoding="utf-8")
    filled = re.sub(r"(?m)^  users: \[\].*$", "  users: [U0HOST0001]", policy)
    filled = re.sub(r"(?m)^  channel: null( +# example: C0123TRIAGE.*)$", "  channel: C0TRIAGE01", filled)
    assert filled.count("U0HOST0001") == 1 and filled.count("C0TRIAGE01") == 1, "the example's hosts/triage lines changed"
    (folder / "platform-feedback.yml").write_text(filled, encoding="utf-8")
    # The HTTP variant's settings, in the .env init wrote.
    port = free_port()
    env_text = (folder / ".env").read_text(encoding="utf-8")
    env_text = env_text.replace("SLACK_BOT_TOKEN=\n", f"SLACK_BOT_TOKEN={TOKEN}\n").replace(
        "SLACK_SIGNING_SECRET=\n", f"SLACK_SIGNING_SECRET={SIGNING_SECRET}\n")
    env_text += f"SLACK_API_URL={fake_slack.url}/api/\nHOST=127.0.0.1\nPORT={port}\n"
    (folder / ".env").write_text(env_text, encoding="utf-8")
    fake_slack.channels["C0TRIAGE01"] = {"name": "platform-triage", "is_private": False, "is_member": True}
    fake_slack.users["U0HOST0001"] = {}

    check = run("check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.splitlines()[-1] == "Ready: `platform-feedback serve`."

    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(bin_), "serve"], cwd=folder, env=base_env, stdout=out, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"

        def healthy():
            assert proc.poll() is None, log.read_text(errors="replace")
            try:
                return httpx.get(base + "/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, timeout=120, what=f"/healthz; the log:\n{log}")
        body, headers = slash_command("the VPN drops every hour", fake_url=fake_slack.url)
        resp = httpx.post(base + "/slack/events", content=body.encode(), headers=headers, timeout=30)
        assert resp.status_code == 200
        assert "FB-1" in resp.json()["text"]  # a one-line report is stored before its ack, which answers it
        wait_for(lambda: [c for c in fake_slack.calls_to("chat.postMessage") if c.body.get("channel") == "C0TRIAGE01"],
                 timeout=60, what="the triage card in triage.channel")
    finally:
        stop_process(proc)
    assert (folder / "platform-feedback.db").exists()  # the SQLite file, in the folder, as the README says
