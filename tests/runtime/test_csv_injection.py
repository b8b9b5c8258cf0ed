"""Issue #14: `report --csv` and `export --csv` never write a cell a spreadsheet runs as a formula
(OWASP "CSV Injection": cells starting with = + - @, tab or CR)."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from bot.runtime.report import SafeCsv
from storage.models import TrackerLink
from tests.insight.test_insight import add_point
from tests.insight.test_insight_cli import run_cli

FORMULAS = ['=HYPERLINK("https://evil.example","x")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)", "\t=1", "\r=1"]


@pytest.mark.parametrize("text", [FORMULAS[0], FORMULAS[3], FORMULAS[4]])
def test_report_and_export_neutralise_formula_cells(db, tmp_path, text):
    now = datetime.now(UTC)
    with db.session() as s, s.begin():
        point = add_point(s, created=now - timedelta(days=1), reporters=[("U1", now - timedelta(days=1))], tags=("ci",), text=text)
        point.links = [TrackerLink(tracker="github", key="k", url=text)]
    env = {"DATABASE_URL": db.url}
    report = run_cli(tmp_path, "report", "--csv", **env)
    export = run_cli(tmp_path, "export", "--csv", "-", **env)
    for result in (report, export):
        assert result.returncode == 0, result.stderr
        cells = [c for row in csv.reader(io.StringIO(result.stdout)) for c in row]
        assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))], cells
    [label] = [r["label"] for r in csv.DictReader(io.StringIO(report.stdout)) if r["section"] == "open_point"]
    assert label.startswith("'") and label.strip().endswith(text.strip()[-3:])  # the text is kept, only made inert


def test_every_formula_start_is_neutralised_and_numbers_stay_numbers():
    out = io.StringIO()
    SafeCsv(csv.writer(out)).writerows([FORMULAS, [-3.5, -2, "-x", "a=b"]])
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert all(c.startswith("'") for c in rows[0]) and rows[1] == ["-3.5", "-2", "'-x", "a=b"]
