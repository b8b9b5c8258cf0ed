"""``platform-feedback report``: the friction scores, loop health, response-target compliance and
the quarter's focus, as a table, JSON or CSV (text cells safe from spreadsheet formulas)."""

import csv
import json
import sys

from bot.focus import data as focus_data
from bot.insight import service as insight
from bot.references import format_ref
from bot.runtime import report_targets
from bot.targets import compliance
from bot.usage import adoption

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class SafeCsv:
    """A csv writer whose text cells cannot run as spreadsheet formulas: a cell starting with
    ``= + - @``, tab or CR gets a leading ``'`` (OWASP, "CSV Injection"). Numbers are left as they are."""

    def __init__(self, writer):
        self.writer = writer

    @staticmethod
    def cell(value):
        return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value

    def writerow(self, row) -> None:
        self.writer.writerow([self.cell(v) for v in row])

    def writerows(self, rows) -> None:
        for row in rows:
            self.writerow(row)


def report(db, policy, days: int | None, fmt: str | None) -> int:
    """``report [--days N] [--json | --csv]`` on stdout; exit status (2: bad --days)."""
    days = days if days is not None else policy.insight.window_days
    if not 1 <= days <= 365:
        print("platform-feedback: --days must be between 1 and 365.", file=sys.stderr)
        return 2
    scores, health, targets = db.background(lambda session: (
        insight.friction_scores(session=session, days=days, limit=20), insight.loop_health(session=session, days=days),
        compliance.compliance(session=session, policy=policy, days=days, weeks=policy.insight.chart_weeks)))
    data = report_data(policy, scores, health)
    if targets is not None:
        data["targets"] = compliance.as_data(targets, policy.taxonomy.label)
    if policy.usage.capabilities:
        data["usage"] = adoption.as_data(db.background(adoption.measure, policy=policy, weeks=policy.insight.chart_weeks))
    if fmt == "json":
        json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
        print()
    elif fmt == "csv":
        writer = SafeCsv(csv.writer(sys.stdout))
        writer.writerow(["section", "name", "label", "value", "previous"])
        writer.writerows(report_rows(data) + report_targets.csv_rows(data.get("targets")) + adoption.csv_rows(data.get("usage")))
    else:
        print(report_table(data) + report_targets.table(data.get("targets")) + adoption.table(data.get("usage")))
    return 0


def focus_report(db, policy, fmt: str | None) -> int:
    """``report --focus``: the current period's focus, or the last finished one (``bot.focus.data``)."""
    if fmt == "csv":
        print("platform-feedback: report --focus prints a table or --json, not --csv.", file=sys.stderr)
        return 2
    data = db.background(focus_data.gather, policy=policy)
    print(json.dumps(data, indent=2, ensure_ascii=False) if fmt == "json" else focus_data.report_text(data))
    return 0


def _hours(value) -> float | None:
    return None if value is None else round(value.total_seconds() / 3600, 2)


def report_data(policy, scores, health) -> dict:
    """The report as plain data: what --json prints, and what the table and CSV are made from."""
    from bot.insight.blocks import FORMULA, category_label

    def loop(n) -> dict:
        return {
            "reports": n.reports, "reports_per_week": round(n.reports_per_week, 2), "active_reporters": n.active_reporters,
            "median_first_response_hours": _hours(n.median_first_response), "median_resolution_hours": _hours(n.median_resolution),
            "resolved": n.resolved, "closed_loop": n.closed_loop,
            "closed_loop_rate": None if n.closed_loop_rate is None else round(n.closed_loop_rate, 4),
        }

    window = scores.window
    return {
        "window": {"days": round(window.days), "start": window.start.isoformat(), "end": window.end.isoformat()},
        "formula": FORMULA,
        "categories": [
            {"id": c.category, "label": category_label(policy.taxonomy, c.category), "score": round(c.score, 2),
             "previous": round(c.previous, 2), "change": round(c.change, 2), "points": c.points,
             "reporters": c.reporters, "hours_lost": round(c.hours_lost, 2)}
            for c in scores.categories
        ],
        "open_points": [
            {"ref": format_ref(policy.reference_prefix, p.point_id), "score": round(p.score, 2), "previous": round(p.previous, 2),
             "reporters": p.reporters, "severity": p.severity, "status": p.status, "categories": list(p.categories), "text": p.text}
            for p in scores.open_points
        ],
        "loop": {
            "current": loop(health.current),
            "previous": loop(health.previous),
            "weeks": [{"start": w.start.isoformat(), "reports": w.reports, "active_reporters": w.active_reporters} for w in health.weeks],
            "nps": [{"at": n.at.isoformat(), "score": n.score, "responses": n.responses} for n in health.nps],
        },
    }


def report_rows(data: dict) -> list[list]:
    rows = [["category", c["id"], c["label"], c["score"], c["previous"]] for c in data["categories"]]
    rows += [["open_point", p["ref"], p["text"], p["score"], p["previous"]] for p in data["open_points"]]
    now, before = data["loop"]["current"], data["loop"]["previous"]
    rows += [["loop", key, "", now[key], before[key]] for key in now]
    for week in data["loop"]["weeks"]:
        rows += [["week", week["start"], "reports", week["reports"], ""], ["week", week["start"], "active_reporters", week["active_reporters"], ""]]
    rows += [["nps", n["at"], "", n["score"], ""] for n in data["loop"]["nps"]]
    return rows


def _table(header: list[str], rows: list[list]) -> list[str]:
    """Aligned columns: the first and a "text" column to the left, numbers to the right."""
    cells = [[str("–" if v is None else v) for v in row] for row in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    left = {0} | {i for i, h in enumerate(header) if h == "text"}
    return ["  " + "  ".join(v.ljust(w) if i in left else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths, strict=False))).rstrip()
            for r in cells]


TEXT_WIDTH = 60  # characters of a report's text in the table (--json and --csv keep all of it)


def clip(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis when it was longer."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1].rstrip() + "…"


def one_place(value) -> str | None:
    """A number with one decimal (the table's hours and rates), None as is (shown as –)."""
    return None if value is None else f"{value:.1f}"


def report_table(data: dict) -> str:
    from bot.insight.blocks import trend

    w = data["window"]
    lines = [f"Top friction, last {w['days']} days (to {w['end'][:16]} UTC); trend vs the {w['days']} days before", ""]
    categories = [c for c in data["categories"] if c["score"] or c["previous"]]
    lines += _table(["area", "score", "trend", "reports", "reporters", "hours lost"],
                    [[c["label"], f"{c['score']:.1f}", trend(c["score"], c["previous"]), c["points"], c["reporters"], f"{c['hours_lost']:.1f}"]
                     for c in categories]) if categories else ["  no friction reported in this window"]
    if data["open_points"]:
        lines += ["", "Top open reports", *_table(["ref", "score", "trend", "reporters", "text"], [
            [p["ref"], f"{p['score']:.1f}", trend(p["score"], p["previous"]), p["reporters"], clip(p["text"], TEXT_WIDTH)]
            for p in data["open_points"]])]
    now, before = data["loop"]["current"], data["loop"]["previous"]
    rate = lambda n: "–" if n["closed_loop_rate"] is None else f"{n['closed_loop_rate']:.0%} of {n['resolved']}"  # noqa: E731
    loop = [["reports per week", one_place(now["reports_per_week"]), one_place(before["reports_per_week"])],
            ["active reporters", now["active_reporters"], before["active_reporters"]],
            ["median first response (h)", one_place(now["median_first_response_hours"]), one_place(before["median_first_response_hours"])],
            ["median time to resolve (h)", one_place(now["median_resolution_hours"]), one_place(before["median_resolution_hours"])],
            ["closed-loop rate", rate(now), rate(before)]]
    lines += ["", "Closing the loop", *_table(["", "now", "before"], loop)]
    weeks = data["loop"]["weeks"]
    lines += ["", "Weekly (oldest first)", *_table(["week from", "reports", "active reporters"],
                                                  [[x["start"][:10], x["reports"], x["active_reporters"]] for x in weeks])]
    nps = data["loop"]["nps"]
    lines += ["", "Pulse NPS (-100 to 100; surveys closed in the window, oldest first)",
              *(_table(["closed", "NPS", "answers"], [[n["at"][:10], n["score"], n["responses"]] for n in nps])
                if nps else ["  no survey with an NPS question closed in this window"])]
    lines += ["", data["formula"]]
    return "\n".join(lines)
