"""The focus report (``bot.focus.service.report``) as plain data: what
``platform-feedback report --focus --json`` prints, what its table and the dashboard's focus
section are made from. The same numbers as ``/platform-feedback focus report``."""

from datetime import datetime

from sqlmodel import Session

from bot.focus import service as focus
from bot.focus.models import FocusReport, Pulse, pulse_compared, pulse_words  # noqa: F401  (re-exported)
from bot.policy import Policy
from bot.references import format_ref

NUMBERS = (("score", "friction score"), ("reports_per_week", "reports per week"), ("hours_lost_per_week", "hours lost per week"))




def report_data(report: FocusReport, policy: Policy) -> dict:
    """``{"period", "ended", "items": [{"subject", "ref", "merged_into", "title", "people", "fixed", "links",
    "baseline": {...}, "now": {...}}], "pulse": [NPS, CSAT]}``; each side of an item has score,
    reports_per_week, reporters, hours_lost_per_week (the insight window before it), ``now`` also
    told_fixed (reporters told it was fixed during the period)."""
    items = []
    for item in report.items:
        view, base, now = item.view, item.view.baseline, item.now
        side = lambda m: {"at": m.at, "score": m.score, "reports_per_week": m.reports_per_week, "reporters": m.reporters,  # noqa: E731
                          "hours_lost_per_week": m.hours_lost_per_week}
        items.append({
            "subject": str(view.subject),
            "ref": format_ref(policy.reference_prefix, view.subject.value) if view.subject.kind == "report" else None,
            "merged_into": format_ref(policy.reference_prefix, view.merged_into) if view.merged_into else None,
            "area": view.subject.value if view.subject.kind == "area" else None,
            "title": view.title, "people": view.people, "fixed": view.fixed,
            "links": [{"key": link.key, "url": link.url, "closed": link.closed} for link in view.links],
            "baseline": side(base), "now": {**side(now), "told_fixed": now.told_fixed},
        })
    return {"period": report.key, "ended": report.ended, "items": items,
            "pulse": [pulse_compared(name, report.pulse_before, report.pulse_after) for name in ("NPS", "CSAT")]}


def gather(*, session: Session, policy: Policy, now: datetime | None = None) -> dict | None:
    """``report_data`` of the current period's focus, or the last finished one; None: nothing picked."""
    from bot.usage.adoption import focus_usage  # adoption and CSAT of an area's capabilities, before and after

    result = focus.report(session=session, policy=policy, now=now)
    return None if result is None else focus_usage(session=session, policy=policy, data=report_data(result, policy))




def report_text(data: dict | None) -> str:
    """The table ``platform-feedback report --focus`` prints."""
    from bot.usage.adoption import focus_words

    if data is None:
        return "Nothing is in the focus: pick with `/platform-feedback focus`."
    lines = [f"Focus {data['period']}: baseline (when picked) against {'the end of the period' if data['ended'] else 'now'}", ""]
    for item in data["items"]:
        name = item["ref"] or f"area {item['area']}"
        if item.get("merged_into"):
            name += f" (merged into {item['merged_into']})"
        title = " ".join(item["title"].split())[:70]
        lines.append(f"{name}: {title} (raised by {item['people']}{', fixed' if item['fixed'] else ''})")
        for key, label in NUMBERS:
            lines.append(f"  {label:<22}{item['baseline'][key]:>9g} → {item['now'][key]:g}")
        lines.append(f"  {'reporters told fixed':<22}{item['now']['told_fixed']:>9}")
        lines += [f"  usage: {focus_words(u)}" for u in item.get("usage", [])] + [""]
    lines += ["Pulse, before (at the first pick) and after:", *(f"  {pulse_words(p)}" for p in data["pulse"])]
    return "\n".join(lines)
