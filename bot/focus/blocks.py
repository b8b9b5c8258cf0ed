"""The quarter's focus: the picker, the announcement, the reporters' DM and the before/after report."""

from bot.focus.ids import FocusAction
from bot.focus.models import FocusReport, FocusState, ItemView, Pulse, pulse_compared, pulse_words
from bot.insight.service import FrictionScores
from bot.intake.blocks import _text
from bot.policy import Taxonomy
from bot.references import format_ref
from bot.text import link, mrkdwn, shorten, to_mrkdwn


def _subject_label(subject: str, prefix: str, taxonomy: Taxonomy) -> str:
    kind, _, value = subject.partition(":")
    return format_ref(prefix, value) if kind == "report" else f"the {taxonomy.label(value)} area"


def _item_line(view: ItemView, prefix: str) -> str:
    name = f"*{format_ref(prefix, view.subject.value)}*: " if view.subject.kind == "report" else "*Area:* "
    if view.merged_into:
        name = f"*{format_ref(prefix, view.subject.value)}* (merged into {format_ref(prefix, view.merged_into)}): "
    links = ", ".join(link(item.url, item.key) for item in view.links)
    state = " :white_check_mark: fixed" if view.fixed else ""
    people = f"raised by {view.people} {'person' if view.people == 1 else 'people'}"
    return f"• {name}{mrkdwn(view.title, 200)} ({people}{'; ' + links if links else ''}){state}"


def build_focus_picker(state: FocusState, ranking: FrictionScores, *, prefix: str, taxonomy: Taxonomy, size: int) -> dict:
    """``/platform-feedback focus``: the current focus and the candidates, with Pick buttons."""
    published = state.period is not None and state.period.published_at is not None
    head = f"*Focus for {state.key}* ({len(state.items)} of {size}{', published' if published else ''})"
    blocks: list[dict] = [{"type": "section", "text": _text(head, "mrkdwn")}]
    for view in state.items:
        blocks.append({"type": "section", "text": _text(_item_line(view, prefix), "mrkdwn"),
                       "accessory": {"type": "button", "action_id": FocusAction.drop, "text": _text("Drop"), "value": view.item.subject}})
    picked = {v.item.subject for v in state.items}
    blocks.append({"type": "section", "text": _text("*Candidates* from the current ranking (score, reporters, trend):", "mrkdwn")})
    for p in ranking.open_points:
        subject = f"report:{p.point_id}"
        if subject in picked:
            continue
        trend = f"{p.change:+.1f}"
        line = f"*{format_ref(prefix, p.point_id)}* {mrkdwn(p.text, 150)}\nscore {p.score:.1f} · {p.reporters} reporters · trend {trend}"
        blocks.append({"type": "section", "text": _text(line, "mrkdwn"),
                       "accessory": {"type": "button", "action_id": FocusAction.pick, "text": _text("Pick"), "value": subject}})
    for c in ranking.categories[:5]:
        subject = f"area:{c.category}"
        if subject in picked or not taxonomy.has(c.category):
            continue
        line = f"*Area: {to_mrkdwn(taxonomy.label(c.category))}*\nscore {c.score:.1f} · {c.points} reports · {c.hours_lost:.0f} h lost · trend {c.change:+.1f}"
        blocks.append({"type": "section", "text": _text(line, "mrkdwn"),
                       "accessory": {"type": "button", "action_id": FocusAction.pick, "text": _text("Pick"), "value": subject}})
    if state.items and not published:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "action_id": FocusAction.publish, "text": _text("Publish"), "style": "primary", "value": state.key},
        ]})
    return {"text": head, "blocks": blocks[:50]}


def build_focus_post(state: FocusState, *, prefix: str) -> dict:
    """The announcement: "We heard you: this quarter we are working on …"."""
    lines = "\n".join(_item_line(v, prefix) for v in state.items) or "• (nothing picked)"
    head = f":mega: *We heard you.* This quarter ({state.key}) the platform team is working on:"
    return {"text": f"We heard you: this quarter ({state.key}) we are working on {len(state.items)} things you raised.",
            "blocks": [{"type": "section", "text": _text(head, "mrkdwn")},
                       {"type": "section", "text": _text(shorten(lines, 2900), "mrkdwn")},
                       {"type": "context", "elements": [_text("Kept up to date as the work lands. Tell us with /platform-feedback.", "mrkdwn")]}]}


def build_focus_dm(key: str, title: str, prefix: str, subject: str) -> dict:
    return build_focus_dm_for(key, [(title, subject)], prefix)


def build_focus_dm_for(key: str, items: list[tuple[str, str]], prefix: str) -> dict:
    """One person's one DM about the focus: every item (title, subject) they reported, however many."""
    def what(subject: str) -> str:
        kind, _, value = subject.partition(":")
        return f"your report *{format_ref(prefix, value)}*" if kind == "report" else "friction you reported in this area"

    if len(items) == 1:
        (title, subject), = items
        head = f":dart: You told us, and we listened: {what(subject)} is in the platform team's focus for {key}:\n>{mrkdwn(title, 280)}"
    else:
        lines = "\n".join(f"• {what(subject)}: {mrkdwn(title, 200)}" for title, subject in items[:10])
        head = f":dart: You told us, and we listened: {len(items)} things you reported are in the platform team's focus for {key}:\n{lines}"
    return {"text": f"Something you reported is in the platform team's focus for {key}.",
            "blocks": [{"type": "section", "text": _text(shorten(head, 2900), "mrkdwn")}]}


def _change(before: float, after: float, unit: str = "") -> str:
    return f"{before:g}{unit} → {after:g}{unit}"


def _pulse_line(before: Pulse, after: Pulse) -> str:
    return " · ".join(pulse_words(pulse_compared(name, before, after)) for name in ("NPS", "CSAT"))


def build_focus_report(report: FocusReport, *, prefix: str) -> dict:
    """What changed since each item was picked, and the pulse before and after."""
    blocks: list[dict] = [{"type": "section", "text": _text(f":bar_chart: *What changed: the focus for {report.key}*", "mrkdwn")}]
    for item in report.items:
        b, n = item.view.baseline, item.now
        line = (f"{_item_line(item.view, prefix)}\nscore {_change(b.score, n.score)} · reports/week {_change(b.reports_per_week, n.reports_per_week)}"
                f" · hours lost/week {_change(b.hours_lost_per_week, n.hours_lost_per_week)} · {n.told_fixed} reporters told it was fixed")
        blocks.append({"type": "section", "text": _text(shorten(line, 2900), "mrkdwn")})
    blocks.append({"type": "context", "elements": [_text(_pulse_line(report.pulse_before, report.pulse_after), "mrkdwn")]})
    return {"text": f"What changed: the focus for {report.key}", "blocks": blocks[:50]}
