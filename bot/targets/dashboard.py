"""The dashboard's response-target section (``templates/_targets.html``) from a ``Compliance``."""

from markupsafe import Markup

from bot import charts
from bot.insight.blocks import category_label
from bot.targets import compliance


def _week(at) -> str:
    return at.strftime("%d %b")


def _markup(svg: str) -> Markup:
    return Markup(svg)  # matplotlib wrote the SVG and escaped every text in it


def targets_section(taxonomy, c: compliance.Compliance | None) -> dict | None:
    """What ``_targets.html`` shows: the two rates against the window before, breaches by severity
    and area, and the weekly rates as a chart."""
    if c is None:
        return None

    def pct(r) -> str:
        return "–" if r.percent is None else f"{r.percent:.0f}%"

    kpis = [
        {"name": "First response on target", "value": pct(c.first_response), "detail": f"of {c.first_response.measured}",
         "was": pct(c.previous_first_response)},
        {"name": "Resolution on target", "value": pct(c.resolution), "detail": f"of {c.resolution.measured}", "was": pct(c.previous_resolution)},
        {"name": "Breaches", "value": str(c.breaches), "detail": "clocks past their target in the window", "was": None},
    ]
    chart = None
    if any(w.first_response.measured or w.resolution.measured for w in c.weeks):
        chart = _markup(charts.svg_line_chart(
            "Share of clocks on target, per week", [_week(w.start) for w in c.weeks],
            {"first response": [w.first_response.percent for w in c.weeks], "resolution": [w.resolution.percent for w in c.weeks]},
            y_label="% on target", id_prefix="targets",
        ))
    return {
        "kpis": kpis, "breaches": c.breaches, "chart": chart,
        "by_severity": sorted(c.breaches_by_severity.items(), key=lambda kv: -kv[1]),
        "by_area": [("no area" if k is None else category_label(taxonomy, k), v) for k, v in sorted(c.breaches_by_area.items(), key=lambda kv: -kv[1])],
    }
