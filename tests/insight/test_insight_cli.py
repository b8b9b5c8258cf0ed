"""``platform-feedback report`` and ``export`` as real processes, with only DATABASE_URL and
CONFIG_FILE set (no Slack tokens), against a database filled by hand."""

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.triage import service as triage
from storage.models import ClosureNotice, TrackerLink
from tests.insight.test_insight import add_point

REPO = Path(__file__).resolve().parents[2]


def run_cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), **env}
    return subprocess.run([sys.executable, "-m", "bot.runtime.cli", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def filled(db, tmp_path) -> dict:
    """Times relative to now, since the CLI reports up to now. Policy: prefix PF."""
    now = datetime.now(UTC)
    days = lambda n: now - timedelta(days=n)  # noqa: E731
    with db.session() as s, s.begin():
        # Current window: CI, high, 2 reporters, 8 h lost: 2 x 4 + 1 = 9. Linked to an issue.
        ci = add_point(s, created=days(3), reporters=[("U1", days(3)), ("U2", days(2))], severity="high", tags=("ci",), minutes=480,
                       first_response=days(3) + timedelta(hours=2), status="linked", text="ci, pipeline: \"flaky\"\non main")
        ci.links = [TrackerLink(tracker="github", key="acme/ci#7", url="https://github.com/acme/ci/issues/7")]
        # Its duplicate, merged: its reporter and 60 minutes count for the CI point: 3 x 4 + 540 / 480 = 13.125.
        dup = add_point(s, created=days(1), reporters=[("U3", days(1))], tags=("ci",), minutes=60)
        triage.merge(session=s, point_id=dup.id, into_id=ci.id, actor="U0HOST0001", prefix="PF")
        # Docs: one low report resolved after 24 h, its reporter notified: closed loop 1 of 1.
        docs = add_point(s, created=days(10), reporters=[("U4", days(10))], severity="low", tags=("docs", "onboarding"),
                         first_response=days(10) + timedelta(hours=4), resolved=days(9), status="resolved")
        s.add(ClosureNotice(friction_point_id=docs.id, user_id="U4", tracker="github", key="acme/docs#1", closure=1, outcome="fixed"))
        # The window before: access, medium, 1 reporter = 2.
        add_point(s, created=days(40), reporters=[("U5", days(40))], tags=("access",))
    (tmp_path / "policy.yml").write_text("reference_prefix: PF\n")
    return {"env": {"DATABASE_URL": db.url, "CONFIG_FILE": str(tmp_path / "policy.yml")}, "ci": ci.id, "dup": dup.id, "docs": docs.id,
            "docs_resolved": days(9)}


def test_report_json_has_the_right_numbers(filled, tmp_path):
    result = run_cli(tmp_path, "report", "--json", **filled["env"])
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["window"]["days"] == 30
    scores = {c["id"]: (c["score"], c["previous"], c["points"]) for c in data["categories"]}
    assert scores == {"ci": (13.12, 0.0, 1), "docs": (1.0, 0.0, 1), "onboarding": (1.0, 0.0, 1), "access": (0.0, 2.0, 0)}
    assert [c["label"] for c in data["categories"]] == ["CI", "Docs", "Onboarding", "Access"]
    [top] = data["open_points"]
    assert (top["ref"], top["score"], top["reporters"], top["status"]) == (f"PF-{filled['ci']}", 13.12, 3, "linked")
    loop = data["loop"]["current"]
    assert (loop["reports"], loop["active_reporters"], loop["resolved"], loop["closed_loop"], loop["closed_loop_rate"]) == (3, 4, 1, 1, 1.0)
    # First responses: 2 h and 4 h (the merged duplicate counts not at all, issue #30); one resolution, 24 h.
    assert (loop["median_first_response_hours"], loop["median_resolution_hours"]) == (3.0, 24.0)
    assert data["loop"]["previous"]["reports"] == 1 and data["loop"]["nps"] == []
    assert sum(w["reports"] for w in data["loop"]["weeks"]) == 4  # eight weeks reach back past the access report


def test_report_csv_parses_and_the_table_reads(filled, tmp_path):
    result = run_cli(tmp_path, "report", "--csv", "--days", "30", **filled["env"])
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert set(rows[0]) == {"section", "name", "label", "value", "previous"}
    categories = {r["name"]: (float(r["value"]), float(r["previous"])) for r in rows if r["section"] == "category"}
    assert categories["ci"] == (13.12, 0.0) and categories["access"] == (0.0, 2.0)
    [point] = [r for r in rows if r["section"] == "open_point"]
    assert point["name"] == f"PF-{filled['ci']}" and point["label"] == 'ci, pipeline: "flaky"\non main'  # quoted, not broken
    loop = {r["name"]: r["value"] for r in rows if r["section"] == "loop"}
    assert loop["closed_loop_rate"] == "1.0" and loop["reports"] == "3"
    table = run_cli(tmp_path, "report", **filled["env"])
    assert table.returncode == 0, table.stderr
    ci_line = next(line for line in table.stdout.splitlines() if line.strip().startswith("CI "))
    assert ci_line.split() == ["CI", "13.1", "new", "1", "3", "9.0"]
    assert f"PF-{filled['ci']}" in table.stdout and "Closing the loop" in table.stdout and "100% of 1" in table.stdout
    bad = run_cli(tmp_path, "report", "--days", "0", **filled["env"])
    assert bad.returncode == 2 and "--days" in bad.stderr and "Traceback" not in bad.stderr


def test_export_writes_every_data_point(filled, tmp_path):
    out = tmp_path / "points.csv"
    result = run_cli(tmp_path, "export", "--csv", str(out), **filled["env"])
    assert result.returncode == 0, result.stderr
    assert "exported 4 data points" in result.stderr
    rows = list(csv.DictReader(out.open(newline="", encoding="utf-8")))
    assert list(rows[0]) == ["ref", "created", "status", "severity", "minutes_lost", "kind", "source", "categories",
                             "reporters", "links", "first_response", "resolved", "text"]
    by_ref = {r["ref"]: r for r in rows}
    assert len(rows) == 4 and len(by_ref) == 4
    ci, dup, docs = by_ref[f"PF-{filled['ci']}"], by_ref[f"PF-{filled['dup']}"], by_ref[f"PF-{filled['docs']}"]
    assert (ci["status"], ci["severity"], ci["minutes_lost"], ci["categories"], ci["reporters"]) == ("linked", "high", "480", "ci", "3")
    assert ci["links"] == "https://github.com/acme/ci/issues/7" and ci["first_response"] and not ci["resolved"]
    assert (dup["status"], dup["reporters"]) == ("duplicate", "1")
    assert docs["categories"] == "docs;onboarding"
    assert abs(datetime.fromisoformat(docs["resolved"]) - filled["docs_resolved"]) < timedelta(milliseconds=1)
    stdout = run_cli(tmp_path, "export", "--csv", "-", **filled["env"])
    assert stdout.returncode == 0 and len(list(csv.DictReader(io.StringIO(stdout.stdout)))) == 4


def test_report_needs_no_slack_settings_and_says_when_the_database_is_missing(tmp_path):
    result = run_cli(tmp_path, "report", DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert result.returncode == 2 and "DATABASE_URL" in result.stderr and "SLACK" not in result.stderr
    assert "Traceback" not in result.stderr


def test_report_table_shows_the_pulse_nps(filled, tmp_path):
    """Issue #11 item 10: the README lists NPS in the report; the table used to leave it out."""
    from bot.runtime.report import report_table as _report_table

    table = run_cli(tmp_path, "report", **filled["env"])
    assert "Pulse NPS" in table.stdout and "no survey with an NPS question closed in this window" in table.stdout
    data = json.loads(run_cli(tmp_path, "report", "--json", **filled["env"]).stdout)
    data["loop"]["nps"] = [{"at": "2026-10-01T09:00:00+00:00", "score": 23.5, "responses": 41}]
    line = next(line for line in _report_table(data).splitlines() if line.strip().startswith("2026-10-01"))
    assert line.split() == ["2026-10-01", "23.5", "41"]
