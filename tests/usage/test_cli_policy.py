"""``platform-feedback usage`` (signed over HTTP, with a retry after 429; or straight into the
database) and the policy: the example's usage section, uncommented, is valid; a capability's area
must be a taxonomy category."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlmodel import select

from bot.policy import Policy
from bot.runtime.config import load_policy
from bot.runtime.settings import ConfigError
from storage.database import Database
from storage.models import UsageEvent
from tests.usage.helpers import USAGE_SECRET, usage_policy

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.runtime.cli", "usage", *args], cwd=REPO, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **env}, timeout=120)


def test_the_example_usage_section_uncommented_is_valid():
    text = (REPO / "platform-feedback.example.yml").read_text(encoding="utf-8")
    block = text[text.index("# usage:"):text.index("# A CI step")]
    raw = yaml.safe_load("\n".join(re.sub(r"^# ?", "", line) for line in block.splitlines()))
    policy = Policy.model_validate(raw)
    assert policy.usage.names == ["deploy", "new-service"] and policy.usage.capability("deploy").csat.sample_every == 10
    assert "openssl dgst -sha256 -hmac" in text and "platform-feedback usage --capability deploy" in text


def test_an_area_that_is_not_a_category_stops_start_up(tmp_path):
    path = tmp_path / "policy.yml"
    path.write_text("usage:\n  capabilities:\n    - {name: deploy, area: deployz}\n")
    with pytest.raises(ConfigError, match=r"usage.capabilities\[deploy\].area 'deployz' is not a taxonomy category id"):
        load_policy(path)
    path.write_text("usage:\n  capabilities:\n    - {name: deploy}\n    - {name: deploy}\n")
    with pytest.raises(ConfigError, match="names must be unique"):
        load_policy(path)


@pytest.fixture
def sqlite_db(tmp_path):
    """A migrated SQLite file (the CLI's direct write is the same code on PostgreSQL: one database is enough here)."""
    db = Database(f"sqlite:///{tmp_path / 'bot.db'}")
    db.migrate()
    yield db
    db.dispose()


def test_the_cli_writes_into_the_database_without_url(tmp_path, sqlite_db):
    db = sqlite_db
    policy = tmp_path / "policy.yml"
    policy.write_text(yaml.safe_dump(usage_policy().model_dump(include={"usage"}, mode="json")))
    env = {"DATABASE_URL": db.url, "CONFIG_FILE": str(policy)}
    done = cli("--capability", "deploy", "--user", "U0DEV0001", "--id", "deploy-77", "--outcome", "failed", "--duration-ms", "5000",
               "--subject", "payments-api", env=env)
    assert done.returncode == 0 and "usage event deploy-77 stored" in done.stdout, done.stderr
    again = cli("--capability", "deploy", "--user", "U0DEV0001", "--id", "deploy-77", env=env)
    assert again.returncode == 0 and "was already stored" in again.stdout
    bad = cli("--capability", "teleport", "--user", "U0DEV0001", env=env)
    assert bad.returncode == 1 and "capability 'teleport' is not in the policy's usage.capabilities" in bad.stdout
    assert "Traceback" not in bad.stderr + done.stderr
    with db.session() as s:
        rows = s.scalars(select(UsageEvent)).all()
    assert [(e.key, e.outcome, e.duration_ms, e.subject, e.settled) for e in rows] == [("deploy-77", "failed", 5000, "payments-api", False)]


def test_the_cli_signs_and_sends_and_says_what_the_bot_said(tmp_path, sqlite_db):
    """Against a real `serve` (tests.web.test_dashboard.serving_dashboard; the usage secret in its working
    directory's .env, which the settings read)."""
    from tests.web.test_dashboard import serving_dashboard

    db = sqlite_db
    policy = tmp_path / "policy.yml"
    policy.write_text(yaml.safe_dump(usage_policy().model_dump(include={"usage"}, mode="json")))
    (tmp_path / ".env").write_text(f"USAGE_SIGNING_SECRET={USAGE_SECRET}\n")
    with serving_dashboard(tmp_path, db.url, policy) as base:
        url = f"{base}/events/usage"
        sent = cli("--capability", "deploy", "--user", "U0DEV0001", "--id", "cli-1", "--url", url, env={"USAGE_SIGNING_SECRET": USAGE_SECRET})
        assert sent.returncode == 0 and "usage event cli-1 stored" in sent.stdout, sent.stdout + sent.stderr
        wrong = cli("--capability", "deploy", "--user", "U0DEV0001", "--url", url, env={"USAGE_SIGNING_SECRET": "not-the-bots-secret-000"})
        assert wrong.returncode == 1 and "answered 401: bad signature" in wrong.stdout
        unknown = cli("--capability", "teleport", "--user", "U0DEV0001", "--url", url, env={"USAGE_SIGNING_SECRET": USAGE_SECRET})
        assert unknown.returncode == 1 and "answered 400: capability 'teleport'" in unknown.stdout
        unset = cli("--capability", "deploy", "--user", "U0DEV0001", "--url", url, env={})
        assert unset.returncode == 2 and "USAGE_SIGNING_SECRET is not set" in unset.stderr
    with db.session() as s:
        assert [e.key for e in s.scalars(select(UsageEvent)).all()] == ["cli-1"]
