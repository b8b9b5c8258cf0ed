"""Issue #18, what changed where people look: ``platform-feedback report --focus [--json]`` as a
real process and the dashboard's focus section over real HTTP, both over the demo's sample (which
holds a finished focus quarter), with the numbers of ``/platform-feedback focus report``."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from bot.focus import data as focus_data
from bot.focus import service as focus
from bot.focus.blocks import build_focus_report
from bot.policy import Policy
from bot.runtime import demo
from tests.insight.test_insight_cli import run_cli
from tests.web.test_dashboard import DASHBOARD_TOKEN, dashboard_client

NOW = datetime.now(UTC)


@pytest.fixture
def sample(db):
    return demo.generate(db, points=400, seed=5, now=NOW)


def test_the_demo_holds_a_finished_focus_quarter(db, sample):
    key = focus.period_for(focus.period_for(NOW, "UTC")[1] - timedelta(seconds=1), "UTC")[0]  # the quarter before this one
    data = db.transact(focus_data.gather, policy=Policy(), now=NOW)
    assert data["period"] == key and data["ended"] is True and key in sample.focus_note
    reports = [i for i in data["items"] if i["ref"]]
    assert len(reports) == 2 and any(i["area"] for i in data["items"])
    for item in reports:  # fixed during the quarter, every reporter told
        assert item["fixed"] and item["now"]["told_fixed"] == item["people"] > 0 and item["baseline"]["score"] > 0
    nps, csat = data["pulse"]
    assert nps["shown"] and csat["shown"] and not nps["same_run"] and nps["before"]["answers"] >= 5 <= nps["after"]["answers"]


def test_report_focus_prints_the_same_numbers_as_slack(db, sample, tmp_path):
    (tmp_path / "policy.yml").write_text("reference_prefix: FB\n")
    env = {"DATABASE_URL": db.url, "CONFIG_FILE": str(tmp_path / "policy.yml")}
    result = run_cli(tmp_path, "report", "--focus", "--json", **env)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed == db.transact(focus_data.gather, policy=Policy())  # a finished quarter: the same whenever asked
    # The Slack report is built from the same FocusReport.
    result = db.transact(focus.report, policy=Policy())
    slack = json.dumps(build_focus_report(result, prefix="FB"), ensure_ascii=False)
    for p in printed["pulse"]:
        assert focus_data.pulse_words(p) in slack
    table = run_cli(tmp_path, "report", "--focus", **env)
    assert table.returncode == 0 and f"Focus {printed['period']}" in table.stdout
    assert focus_data.pulse_words(printed["pulse"][0]) in table.stdout and "reporters told fixed" in table.stdout
    refused = run_cli(tmp_path, "report", "--focus", "--csv", **env)
    assert refused.returncode == 2 and "not --csv" in refused.stderr and refused.stdout == ""


def test_report_focus_with_nothing_picked(db, tmp_path):
    (tmp_path / "policy.yml").write_text("reference_prefix: FB\n")
    result = run_cli(tmp_path, "report", "--focus", "--json", DATABASE_URL=db.url, CONFIG_FILE=str(tmp_path / "policy.yml"))
    assert result.returncode == 0 and json.loads(result.stdout) is None
    assert "Nothing is in the focus" in run_cli(tmp_path, "report", "--focus", DATABASE_URL=db.url,
                                                 CONFIG_FILE=str(tmp_path / "policy.yml")).stdout


async def test_the_dashboard_shows_the_focus_and_the_changelog(fake_slack, db, sample):
    data = db.transact(focus_data.gather, policy=Policy())
    async with dashboard_client(fake_slack, db, dashboard_token=DASHBOARD_TOKEN) as http:
        page = (await http.get("/dashboard", headers={"Authorization": f"Bearer {DASHBOARD_TOKEN}"})).text
    section = page[page.index('<section id="focus">'):]
    section = section[:section.index("</section>")]
    assert f"The quarter's focus: {data['period']} (finished)" in section
    for item in data["items"]:
        assert (item["ref"] or "Area: ") in section
    assert "Reporters told it was fixed" in section
    for p in data["pulse"]:
        assert focus_data.pulse_words(p) in section
    assert 'id="changelog"' in section and "acme/platform#" in section
