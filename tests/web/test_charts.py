"""Charts are drawn in a worker process (``bot.charts``): the calling interpreter never imports
matplotlib, the results are the drawing module's, and a worker that died is replaced."""

import os
import signal
import subprocess
import sys
from pathlib import Path

from bot import charts

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
from bot import charts
png = charts.line_chart("Friction", ["Nov 02", "Nov 09"], {"ci": [1.5, None]}, y_label="score")
bars = charts.bar_chart("Runs", ["a", "b"], [1, 2])
svg = charts.svg_bar_chart("Areas", ["ci", "docs"], {"now": [3.0, 1.0], "before": [2.0, 2.0]}, id_prefix="areas")
assert png.startswith(b"\\x89PNG") and bars.startswith(b"\\x89PNG"), png[:8]
assert svg.startswith("<svg") and 'id="areas-' in svg and 'aria-label="Areas"' in svg, svg[:200]
print("matplotlib" in sys.modules, "bot.charts.drawing" in sys.modules)
"""


def test_the_calling_process_never_imports_matplotlib():
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"], out.stdout


def test_same_chart_as_drawing_it_here():
    from bot.charts import drawing

    args = ("NPS", ["01 Jan 2026", "01 Apr 2026"], {"NPS": [12.0, -3.0]})
    assert charts.svg_line_chart(*args, y_label="NPS", id_prefix="nps") == drawing.svg_line_chart(*args, y_label="NPS", id_prefix="nps")


def test_a_worker_that_died_is_replaced():
    charts.warm_up().result(timeout=120)
    [pid] = charts.WORKER.pids()
    os.kill(pid, signal.SIGKILL)
    svg = charts.svg_line_chart("After", ["a", "b"], {"x": [1.0, 2.0]})
    assert svg.startswith("<svg")
    assert pid not in charts.WORKER.pids()


def test_an_error_while_drawing_reaches_the_caller():
    import pytest

    with pytest.raises(ValueError):  # two labels, three values: matplotlib refuses
        charts.bar_chart("Bad", ["a", "b"], [1, 2, 3])
