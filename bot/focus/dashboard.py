"""The dashboard's focus section: the current focus (or the last finished one) with each item's
baseline against now and the pulse NPS/CSAT before and after (``bot.focus.data``, the
numbers of ``/platform-feedback focus report``), and "you said, we did": the recent weeks' fixes
(``bot.changelog.service.fixes``, as in the weekly post), focus items marked."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from bot.changelog import service as changelog
from bot.changelog.service import Fix
from bot.focus import data as focus_data
from bot.policy import Policy
from bot.references import format_ref
from bot.text import shorten

CHANGELOG_WEEKS = 4
MAX_FIXES = 30


@dataclass(frozen=True)
class FocusSection:
    report: dict | None  # focus_data.report_data, None when nothing was picked
    fixes: list[Fix]  # closed in [start, end), most reporters first
    start: datetime
    end: datetime


def gather(*, session: Session, policy: Policy, now: datetime) -> FocusSection:
    start = now - timedelta(weeks=CHANGELOG_WEEKS)
    return FocusSection(focus_data.gather(session=session, policy=policy, now=now),
                        changelog.fixes(session=session, start=start, end=now), start, now)


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".") if value else "0"


def context(section: FocusSection, policy: Policy) -> dict:
    """What ``focus.html`` shows (people's text as plain strings: the template escapes them)."""
    prefix, report = policy.reference_prefix, section.report
    items = []
    for item in (report or {}).get("items", []):
        base, now = item["baseline"], item["now"]
        rows = [{"name": label, "was": _number(base[key]), "now": _number(now[key]),
                 "trend": "down" if now[key] < base[key] else "up" if now[key] > base[key] else "flat"}
                for key, label in focus_data.NUMBERS]
        items.append({"name": (f"{item['ref']} (merged into {item['merged_into']})" if item.get("merged_into") else item["ref"])
                      or f"Area: {policy.taxonomy.label(item['area'])}", "title": shorten(item["title"], 200) if item["ref"] else "",
                      "people": item["people"], "fixed": item["fixed"], "told": now["told_fixed"], "rows": rows,
                      "links": [link for link in item["links"] if link["url"] and link["url"].startswith(("https://", "http://"))]})
    fixes = [{"key": f.key, "url": f.url if f.url and f.url.startswith(("https://", "http://")) else None,
              "refs": ", ".join(format_ref(prefix, pid) for pid, _ in f.points[:5]), "what": shorten(f.points[0][1], 160) if f.points else "",
              "reporters": f.reporters, "focus": f.focus, "at": f.at.strftime("%d %b")} for f in section.fixes[:MAX_FIXES]]
    return {"period": report["period"] if report else None, "ended": bool(report and report["ended"]), "entries": items,
            "pulse": [focus_data.pulse_words(p) for p in report["pulse"]] if report else [],
            "fixes": fixes, "more_fixes": max(0, len(section.fixes) - MAX_FIXES),
            "since": section.start.strftime("%d %b"), "weeks": CHANGELOG_WEEKS}
