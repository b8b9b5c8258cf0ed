"""`platform-feedback survey send NAME` and `jobs` as a real process, against the fake Slack."""

import json

from sqlalchemy import create_engine, text

from tests.fake_slack import TOKEN
from tests.runtime.test_config_cli import assert_config_failure, run_cli
from tests.slack_requests import SIGNING_SECRET

POLICY = {
    "hosts": {"users": ["U0HOST0001"]},
    "surveys": [{
        "name": "pulse", "questions": [{"id": "nps", "kind": "nps", "text": "Would you recommend the platform?"}],
        "audience": {"channels": ["C0ENG00001"]}, "schedule": "0 0 1 1,4,7,10 *", "timezone": "Europe/Berlin",
    }],
}


def env(tmp_path, fake, policy: dict) -> dict:
    (tmp_path / "policy.yml").write_text(json.dumps(policy))
    return {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.url + "/api/",
            "CONFIG_FILE": "policy.yml", "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db"}


def test_survey_send_starts_one_run_and_queues_one_dm_each(tmp_path, fake_slack):
    fake_slack.channel_members["C0ENG00001"] = ["U0DEV00001", "U0DEV00002", "U0BOTUSER1"]
    fake_slack.users.update({"U0DEV00001": {"tz": "Asia/Tokyo"}, "U0DEV00002": {}, "U0BOTUSER1": {"is_bot": True}})
    settings = env(tmp_path, fake_slack, POLICY)
    listed = run_cli(tmp_path, "jobs", **settings)
    assert "survey:pulse" in listed.stdout.split()
    first = run_cli(tmp_path, "survey", "send", "pulse", **settings)
    assert first.returncode == 0, first.stderr
    assert "pulse run 1 started for 2 people" in first.stdout and "10:00 in each person's own time zone" in first.stdout
    again = run_cli(tmp_path, "survey", "send", "pulse", "--now", **settings)
    assert again.returncode == 1 and "already open" in again.stderr and "Traceback" not in again.stderr
    unknown = run_cli(tmp_path, "survey", "send", "nope", **settings)
    assert unknown.returncode == 2 and "no survey named 'nope'" in unknown.stderr
    engine = create_engine(settings["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            runs = conn.execute(text("SELECT status, manual FROM survey_run")).all()
            users = sorted(r[0] for r in conn.execute(text("SELECT user_id FROM survey_recipient")))
            keys = sorted(r[0] for r in conn.execute(text("SELECT dedupe_key FROM outbox_message")))
    finally:
        engine.dispose()
    assert [(r[0], bool(r[1])) for r in runs] == [("open", True)]
    assert users == ["U0DEV00001", "U0DEV00002"]
    assert keys == ["survey:1:dm:U0DEV00001", "survey:1:dm:U0DEV00002"]


def test_an_invalid_survey_stops_start_up_with_one_line(tmp_path, fake_slack):
    bad = json.loads(json.dumps(POLICY))
    bad["surveys"][0]["schedule"] = "every quarter"
    result = run_cli(tmp_path, "serve", **env(tmp_path, fake_slack, bad))
    assert_config_failure(result, "surveys[pulse].schedule")
    assert "invalid cron expression" in result.stderr
