"""The triage card, the triage modals, reporter notices and the hosts' queue views."""

from datetime import timedelta

from bot.home.ids import HomeAction
from bot.ids import PointMetadata
from bot.insight.service import DuplicateSuggestion
from bot.intake.blocks import SEVERITY_LABELS, STATUS_LABELS, _option, _text
from bot.issue_create.blocks import build_create_button
from bot.policy import Taxonomy
from bot.references import format_ref
from bot.targets.ids import TargetAction
from bot.text import link, mrkdwn, shorten, to_mrkdwn
from bot.triage.ids import CARD_BLOCK, TRIAGE_INPUT_BLOCK, TriageAction, TriageCallback
from bot.triage.service import Change, Headline
from storage.models import FrictionPoint, Severity, Status

SEVERITY_ICON = {"low": ":large_blue_circle:", "medium": ":large_yellow_circle:", "high": ":large_orange_circle:", "blocker": ":red_circle:"}


def card_block_id(point_id: int, part: str) -> str:
    return f"{CARD_BLOCK}:{point_id}:{part}"


def point_id_from_block(block_id: str) -> int | None:
    parts = block_id.split(":")
    return int(parts[1]) if len(parts) == 3 and parts[0] == CARD_BLOCK and parts[1].isdigit() else None


def _title(ref: str, point: FrictionPoint, stage: str | None = None) -> str:
    link_ = link(point.permalink, ref) if point.permalink else ref
    severity = SEVERITY_LABELS.get(point.severity, point.severity).split(":")[0]
    return f"{SEVERITY_ICON.get(point.severity, '')} *{link_}* · {severity} · {stage or STATUS_LABELS.get(point.status, point.status)}"


def _facts(point: FrictionPoint, taxonomy: Taxonomy, prefix: str) -> list[str]:
    reporters = ", ".join(f"<@{r.user_id}>" for r in point.reporters[:10])
    if len(point.reporters) > 10:
        reporters += f" and {len(point.reporters) - 10} more"
    where = f" in <#{point.channel_id}>" if point.channel_id and not point.channel_id.startswith("D") else ""
    facts = [f"Reported by {reporters} via {point.source}{where} on {point.created_at:%Y-%m-%d}"]
    if point.tags:
        facts.append("Area: " + ", ".join(to_mrkdwn(taxonomy.label(t.category)) + (" (auto)" if t.automatic else "") for t in point.tags))
    if point.assignee:
        facts.append(f"Assigned to <@{point.assignee}>")
    if point.links:
        facts.append("Linked: " + ", ".join(link(lnk.url, lnk.key) for lnk in point.links))
    if point.duplicate_of_id:
        facts.append(f"Duplicate of {format_ref(prefix, point.duplicate_of_id)}")
    if point.resolution_note and point.status in (Status.resolved, Status.wont_fix):
        facts.append(f"{'Resolved' if point.status == Status.resolved else 'Declined'}: {mrkdwn(point.resolution_note, 300)}")
    return facts


def build_card(ref: str, point: FrictionPoint, taxonomy: Taxonomy, prefix: str, duplicate: DuplicateSuggestion | None = None,
               due: str | None = None, stage: str | None = None, create_issue: bool = False) -> dict:
    """The triage channel's card for one data point; updated in place as the point changes.
    ``duplicate``: an older open report it resembles, offered as a one-click merge. ``due``: its
    response-target line (``bot.targets.blocks.due_line``), None without targets. ``stage``: its
    stage line (``bot.progress.stage.stage_mrkdwn``); ``create_issue``: offer "Create issue"."""
    blocks: list[dict] = [
        {"type": "section", "text": _text(f"{_title(ref, point)}\n>{mrkdwn(point.text, 600)}", "mrkdwn")},
        {"type": "context", "elements": [_text(f, "mrkdwn") for f in ([stage] if stage else []) + _facts(point, taxonomy, prefix)[:9]]},
    ]
    if due and point.duplicate_of_id is None:
        blocks.append({"type": "context", "block_id": card_block_id(point.id, "due"), "elements": [_text(due, "mrkdwn")]})
    pid = str(point.id)
    if point.duplicate_of_id is not None:
        return {"text": f"{ref}: merged into {format_ref(prefix, point.duplicate_of_id)}", "blocks": blocks}
    if point.status in (Status.resolved, Status.wont_fix):
        blocks.append(
            {
                "type": "actions",
                "block_id": card_block_id(point.id, "closed"),
                "elements": [{"type": "button", "action_id": TriageAction.reopen, "text": _text("Reopen"), "value": pid}],
            }
        )
        return {"text": f"{ref}: {STATUS_LABELS[point.status]}", "blocks": blocks}
    if duplicate is not None:
        blocks.append(_duplicate_section(point.id, duplicate, prefix))
    tag_options = [_option(c.label, c.id) for c in taxonomy.categories]
    tags = {
        "type": "multi_static_select",
        "action_id": TriageAction.tags,
        "placeholder": _text("Area"),
        "options": tag_options,
    }
    chosen = [o for o in tag_options if o["value"] in point.categories]
    if chosen:
        tags["initial_options"] = chosen
    assign = {"type": "users_select", "action_id": TriageAction.assign, "placeholder": _text("Assign to…")}
    if point.assignee:
        assign["initial_user"] = point.assignee
    severity_options = [_option(SEVERITY_LABELS[s].split(":")[0], s) for s in Severity]
    blocks.append(
        {
            "type": "actions",
            "block_id": card_block_id(point.id, "fields"),
            "elements": [
                {"type": "button", "action_id": TriageAction.assign_me, "text": _text("Assign to me"), "value": pid},
                assign,
                {
                    "type": "static_select",
                    "action_id": TriageAction.severity,
                    "options": severity_options,
                    "initial_option": _option(SEVERITY_LABELS[Severity(point.severity)].split(":")[0], point.severity),
                },
                tags,
            ],
        }
    )
    blocks.append(
        {
            "type": "actions",
            "block_id": card_block_id(point.id, "buttons"),
            "elements": [
                {"type": "button", "action_id": TriageAction.link, "text": _text("Link issue"), "value": pid},
                *([build_create_button(point.id)] if create_issue else []),
                {"type": "button", "action_id": TriageAction.merge, "text": _text("Mark duplicate"), "value": pid},
                {"type": "button", "action_id": TargetAction.ask, "text": _text("Ask the reporter"), "value": pid},
                {"type": "button", "action_id": TriageAction.resolve, "text": _text("Resolve"), "value": pid, "style": "primary"},
                {"type": "button", "action_id": TriageAction.decline, "text": _text("Won't fix"), "value": pid, "style": "danger"},
            ],
        }
    )
    return {"text": f"{ref}: {mrkdwn(point.text, 150)}", "blocks": blocks}


def _duplicate_section(point_id: int, duplicate: DuplicateSuggestion, prefix: str) -> dict:
    other = format_ref(prefix, duplicate.point_id)
    return {
        "type": "section",
        "block_id": card_block_id(point_id, "duplicate"),
        "text": _text(
            f":twisted_rightwards_arrows: Possible duplicate of *{other}* ({duplicate.similarity}% similar)\n"
            f">{mrkdwn(duplicate.text, 200)}",
            "mrkdwn",
        ),
        "accessory": {"type": "button", "action_id": TriageAction.merge_suggested, "text": _text(f"Merge into {other}"), "value": str(duplicate.point_id)},
    }


TRIAGE_MODALS = {
    # callback: (title, label, multiline, optional, submit, hint)
    TriageCallback.link: ("Link an issue", "Issue or PR URL", False, False, "Link", "GitHub, GitLab, Jira or Linear."),
    TriageCallback.merge: ("Mark as duplicate", "Duplicate of", False, False, "Merge",
                            "The older report's reference, e.g. FB-12. All reporters stay attached."),
    TriageCallback.resolve: ("Resolve", "What was done (the reporter sees this)", True, True, "Resolve", None),
    TriageCallback.decline: ("Won't fix", "Why not (the reporter sees this)", True, False, "Decline", None),
}


def build_triage_modal(callback: TriageCallback, ref: str, point_id: int) -> dict:
    title, label, multiline, optional, submit, hint = TRIAGE_MODALS[callback]
    block = {
        "type": "input",
        "block_id": TRIAGE_INPUT_BLOCK,
        "optional": optional,
        "label": _text(label),
        "element": {"type": "plain_text_input", "action_id": TriageAction.text, "multiline": multiline, "max_length": 2000},
    }
    if hint:
        block["hint"] = _text(hint)
    return {
        "type": "modal",
        "callback_id": callback,
        "title": _text(title),
        "submit": _text(submit),
        "close": _text("Cancel"),
        "private_metadata": PointMetadata(point_id=point_id).dump(),
        "blocks": [{"type": "section", "text": _text(f"*{ref}*", "mrkdwn")}, block],
    }


def build_reporter_notice(ref: str, point: FrictionPoint, change: Change, actor: str, *, picked_up: bool) -> dict | None:
    """The one DM a reporter gets for a change that matters to them, or None."""
    what = f"your report *{ref}* (“{mrkdwn(point.text, 120)}”)"
    if change == Change.linked and point.links:
        latest = point.links[-1]
        msg = f":link: The platform team is tracking {what} in {link(latest.url, latest.key)}. You'll hear when it's fixed."
    elif change == Change.resolved:
        note = f"\n>{mrkdwn(point.resolution_note, 500)}" if point.resolution_note else ""
        msg = f":white_check_mark: <@{actor}> resolved {what}.{note}"
    elif change == Change.declined:
        note = f"\n>{mrkdwn(point.resolution_note or '', 500)}" if point.resolution_note else ""
        msg = f"The platform team decided not to fix {what} for now. Here's why:{note}"
    elif picked_up:
        msg = f":eyes: <@{actor}> picked up {what}."
    else:
        return None
    plain = msg.replace("*", "")
    return {"text": shorten(plain, 300), "blocks": [{"type": "section", "text": _text(msg, "mrkdwn")}]}


def _duration(value: timedelta | None) -> str:
    if value is None:
        return "–"
    minutes = int(value.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.1f} days"


def build_queue_list(prefix: str, points: list[FrictionPoint], *, limit: int = 20, clocks: dict | None = None, now=None,
                     started: frozenset[int] | set[int] = frozenset(), create_issue: bool = False) -> list[dict]:
    """One section per report; ``clocks`` (point id -> its ``ClockState``s, at ``now``) adds what is
    due next, breaches marked. Each shows its stage (``started``: reports whose issue started) with
    its issue's link; ``create_issue``: a "Create issue" button on those without one."""
    from bot.progress.stage import stage_of
    from bot.targets.blocks import queue_mark

    if not points:
        return [{"type": "section", "text": _text(":tada: The queue is empty.", "mrkdwn")}]
    blocks = []
    for point in points[:limit]:
        ref = format_ref(prefix, point.id)
        who = f"{len(point.reporters)} reporter{'s' if len(point.reporters) != 1 else ''}"
        owner = f" · <@{point.assignee}>" if point.assignee else " · unassigned"
        mark = queue_mark(clocks.get(point.id, ()), now) if clocks else None
        due = f"\n{mark}" if mark else ""
        stage = str(stage_of(point, point.id in started)).capitalize()
        issue = " (" + ", ".join(link(ln.url, ln.key) for ln in point.links[:2]) + ")" if point.links else ""
        section = {"type": "section", "text": _text(f"{_title(ref, point, stage + issue)} · {who}{owner}{due}\n>{mrkdwn(point.text, 200)}", "mrkdwn")}
        if create_issue and not point.links:
            section["accessory"] = build_create_button(point.id)
        blocks.append(section)
    if len(points) > limit:
        blocks.append({"type": "context", "elements": [_text(f"…and {len(points) - limit} more.", "mrkdwn")]})
    return blocks


ORDER_PRIORITY = "Ordered by priority: severity weight (low 1, medium 2, high 4, blocker 8) × reporters, plus one per week waiting."
ORDER_DUE = "Ordered by what is due first (response targets, business time); breached reports on top, then the rest by priority."


def build_host_home(
    prefix: str, taxonomy: Taxonomy, headline: Headline, points: list[FrictionPoint], *, category: str | None, status: str | None,
    clocks: dict | None = None, now=None, by_due: bool = False, started: frozenset[int] | set[int] = frozenset(), create_issue: bool = False,
) -> dict:
    all_option = _option("All areas", "all")
    category_options = [all_option] + [_option(c.label, c.id) for c in taxonomy.categories][:99]
    status_options = [_option("All open", "all")] + [_option(STATUS_LABELS[s], s) for s in ("new", "acknowledged", "linked")]
    category_select = {"type": "static_select", "action_id": HomeAction.filter_category, "options": category_options,
                       "initial_option": next((o for o in category_options if o["value"] == (category or "all")), all_option)}
    status_select = {"type": "static_select", "action_id": HomeAction.filter_status, "options": status_options,
                     "initial_option": next((o for o in status_options if o["value"] == (status or "all")), status_options[0])}
    blocks = [
        {"type": "header", "text": _text("Triage queue")},
        {
            "type": "section",
            "fields": [
                _text(f"*Open*\n{headline.open_count}", "mrkdwn"),
                _text(f"*Closed this week*\n{headline.closed_this_week}", "mrkdwn"),
                _text(f"*Median first response (month)*\n{_duration(headline.median_first_response)}", "mrkdwn"),
                _text(f"*Median time to resolve (month)*\n{_duration(headline.median_resolution)}", "mrkdwn"),
            ],
        },
        {"type": "actions", "block_id": "home_filters", "elements": [category_select, status_select]},
        {"type": "context", "elements": [_text(ORDER_DUE if by_due else ORDER_PRIORITY, "mrkdwn")]},
        {"type": "divider"},
        *build_queue_list(prefix, points, limit=40, clocks=clocks, now=now, started=started, create_issue=create_issue),
    ]
    return {"type": "home", "blocks": blocks[:100]}
