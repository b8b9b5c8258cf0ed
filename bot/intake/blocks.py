"""The report modal and the messages that confirm a report."""


from bot.commands import SUBCOMMANDS, Subcommand
from bot.intake.ids import IntakeAction, IntakeBlock, IntakeCallback, ReportMetadata
from bot.intake.service import MAX_TEXT
from bot.policy import Taxonomy
from bot.references import format_ref
from bot.text import fit, link, mrkdwn
from storage.models import FrictionKind, FrictionPoint, Severity

SEVERITY_LABELS = {
    Severity.low: "Low: an annoyance",
    Severity.medium: "Medium: slowed me down",
    Severity.high: "High: hard to work around",
    Severity.blocker: "Blocker: I'm stuck",
}
TIME_LOST = {5: "A few minutes", 30: "Under an hour", 120: "A couple of hours", 240: "Half a day", 480: "A day or more"}
KIND_LABELS = {
    FrictionKind.feedback: "Feedback or an idea",
    FrictionKind.support: "I need help (support request)",
    FrictionKind.question: "A question for office hours",
}
STATUS_LABELS = {
    "new": "New",
    "acknowledged": "Picked up",
    "linked": "Linked to an issue",
    "resolved": "Resolved",
    "wont_fix": "Won't fix",
    "duplicate": "Merged as duplicate",
}


def _text(t: str, kind: str = "plain_text") -> dict:
    """A text object; mrkdwn is cut to the section limit as sent (after escaping), the last guard."""
    if kind == "mrkdwn":
        return {"type": kind, "text": fit(t)}
    return {"type": kind, "text": t, "emoji": True}


def _option(label: str, value: str) -> dict:
    return {"text": _text(label), "value": value}


def build_report_modal(
    taxonomy: Taxonomy,
    metadata: ReportMetadata,
    *,
    text: str = "",
    categories: list[str] | None = None,
    severity: str = Severity.medium,
    minutes_lost: int | None = None,
    kind: str = FrictionKind.feedback,
    link_url: str | None = None,
) -> dict:
    cat_options = [_option(c.label, c.id) for c in taxonomy.categories]
    categories_element = {
        "type": "multi_static_select",
        "action_id": IntakeAction.categories,
        "placeholder": _text("Pick one or more"),
        "options": cat_options,
    }
    initial_cats = [o for o in cat_options if o["value"] in (categories or [])]
    if initial_cats:
        categories_element["initial_options"] = initial_cats

    severity_options = [_option(label, value) for value, label in SEVERITY_LABELS.items()]
    time_options = [_option(label, str(minutes)) for minutes, label in TIME_LOST.items()]
    kind_options = [_option(label, value) for value, label in KIND_LABELS.items()]
    time_element = {
        "type": "static_select",
        "action_id": IntakeAction.time_lost,
        "placeholder": _text("Roughly"),
        "options": time_options,
    }
    if minutes_lost is not None and minutes_lost in TIME_LOST:
        time_element["initial_option"] = _option(TIME_LOST[minutes_lost], str(minutes_lost))
    text_element = {
        "type": "plain_text_input",
        "action_id": IntakeAction.text,
        "multiline": True,
        "max_length": MAX_TEXT,
        "placeholder": _text("What were you trying to do, and what got in the way?"),
    }
    if text:
        text_element["initial_value"] = text[:MAX_TEXT]
    link_element = {"type": "url_text_input", "action_id": IntakeAction.link}
    if link_url:
        link_element["initial_value"] = link_url

    blocks = [
        {"type": "input", "block_id": IntakeBlock.text, "label": _text("What got in your way?"), "element": text_element},
        {
            "type": "input",
            "block_id": IntakeBlock.categories,
            "optional": True,
            "label": _text("Area"),
            "element": categories_element,
        },
        {
            "type": "input",
            "block_id": IntakeBlock.severity,
            "label": _text("Impact"),
            "element": {
                "type": "static_select",
                "action_id": IntakeAction.severity,
                "options": severity_options,
                "initial_option": _option(SEVERITY_LABELS[Severity(severity)], str(severity)),
            },
        },
        {
            "type": "input",
            "block_id": IntakeBlock.time_lost,
            "optional": True,
            "label": _text("Time it cost you"),
            "element": time_element,
        },
        {
            "type": "input",
            "block_id": IntakeBlock.kind,
            "label": _text("What kind of request is it?"),
            "element": {
                "type": "radio_buttons",
                "action_id": IntakeAction.kind,
                "options": kind_options,
                "initial_option": _option(KIND_LABELS[FrictionKind(kind)], str(kind)),
            },
        },
        {
            "type": "input",
            "block_id": IntakeBlock.link,
            "optional": True,
            "label": _text("Link (optional)"),
            "hint": _text("A pipeline run, a doc, an issue: anything that shows the problem."),
            "element": link_element,
        },
    ]
    return {
        "type": "modal",
        "callback_id": IntakeCallback.report_modal,
        "title": _text("Platform feedback"),
        "submit": _text("Send" if metadata.point_id is None else "Save"),
        "close": _text("Cancel"),
        "private_metadata": metadata.dump(),
        "blocks": blocks,
    }


def _summary_line(ref: str, point: FrictionPoint, limit: int = 200, started: bool = False) -> str:
    """The report's ref, its stage (``bot.progress.stage``) with its issue's link, and its words."""
    from bot.progress.stage import stage_of

    stage = str(stage_of(point, started)).capitalize()
    issue = " (" + ", ".join(link(ln.url, ln.key) for ln in point.links[:2]) + ")" if point.links and point.duplicate_of_id is None else ""
    return f"*{ref}* · {stage}{issue}\n>{mrkdwn(point.text, limit)}"


def build_filed_message(ref: str, point: FrictionPoint, *, with_details_button: bool, note: str | None = None) -> dict:
    """Ephemeral or DM confirmation. Returns ``text`` (the notification fallback) and ``blocks``.
    ``note``: our own mrkdwn (never a person's text), shown under the confirmation."""
    blocks = [
        {
            "type": "section",
            "text": _text(
                f":white_check_mark: Thanks! Filed as *{ref}*.\n>{mrkdwn(point.text, 300)}", "mrkdwn"
            ),
        }
    ]
    if note:
        blocks.append({"type": "section", "text": _text(f":warning: {note}", "mrkdwn")})
    if with_details_button:
        blocks.append(
            {
                "type": "actions",
                "block_id": "filed_actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": IntakeAction.add_details,
                        "text": _text("Add details"),
                        "value": str(point.id),
                    }
                ],
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [_text("The platform team reads every report. `/platform-feedback mine` shows yours.", "mrkdwn")],
        }
    )
    return {"text": f"Thanks! Filed as {ref}.", "blocks": blocks}


def build_thread_reply(ref: str, filed_by: str) -> dict:
    return {
        "text": f"Filed as {ref}.",
        "blocks": [
            {
                "type": "context",
                "elements": [
                    _text(f":ticket: <@{filed_by}> filed this as *{ref}*. The platform team will follow up here.", "mrkdwn")
                ],
            }
        ],
    }


def build_reports_list(prefix: str, points: list[FrictionPoint], *, heading: str, started: frozenset[int] | set[int] = frozenset()) -> list[dict]:
    """Blocks listing reports; the caller caps ``points`` (at most 20 here keeps a message under 50 blocks).
    ``started``: reports whose linked issue started (their stage is "in progress")."""
    blocks: list[dict] = [{"type": "section", "text": _text(f"*{heading}*", "mrkdwn")}]
    if not points:
        blocks.append(
            {"type": "section", "text": _text("Nothing yet. `/platform-feedback &lt;what got in your way&gt;` files one.", "mrkdwn")}
        )
        return blocks
    for point in points[:20]:
        when = point.created_at.strftime("%Y-%m-%d")
        blocks.append({"type": "section", "text": _text(_summary_line(format_ref(prefix, point.id), point, started=point.id in started), "mrkdwn")})
        blocks.append({"type": "context", "elements": [_text(f"Filed {when} · {point.source}", "mrkdwn")]})
    return blocks


def _usage_line(command: Subcommand, prefix: str) -> str:
    args = f" {command.args}" if command.args else ""
    return f"• `/platform-feedback {command.name}{args}` {command.does}".replace("FB-", f"{prefix}-")


def usage_text(reaction: str, prefix: str) -> str:
    """The help, made from ``SUBCOMMANDS`` (every registered subcommand, hosts' ones apart)."""
    lines = [
        "*How to use /platform-feedback*",
        "• `/platform-feedback` opens a form to report what got in your way.",
        "• `/platform-feedback <one line>` files it straight away (you can add details after).",
        *(_usage_line(c, prefix) for c in SUBCOMMANDS if c.who == "anyone"),
        f"• The *Report platform friction* message shortcut, or a :{reaction}: reaction, files any message.",
        "• Or send me a direct message: each message is a report, and a reply in its thread adds to it.",
        "*Hosts*",
        *(_usage_line(c, prefix) for c in SUBCOMMANDS if c.who == "hosts"),
    ]
    return "\n".join(lines).replace("<", "&lt;").replace(">", "&gt;")


def build_usage(reaction: str, *, prefix: str, unknown: str | None = None) -> dict:
    lead = f"I don't know `{mrkdwn(unknown, 40)}`.\n" if unknown else ""
    text = lead + usage_text(reaction, prefix)
    return {"text": text, "blocks": [{"type": "section", "text": _text(text, "mrkdwn")}]}


def build_added_to_report(ref: str) -> dict:
    """The reporter's one confirmation, in their DM thread, that their reply joined ``ref``."""
    msg = f":heavy_plus_sign: Added to *{ref}*; the platform team sees it on the report."
    return {"text": f"Added to {ref}.", "blocks": [{"type": "section", "text": _text(msg, "mrkdwn")}]}


def build_addition_alert(ref: str, user: str, text: str) -> dict:
    """For the hosts, in the report's card thread: what its reporter added (their words as text)."""
    msg = f":speech_balloon: <@{user}> added to *{ref}*:\n>{mrkdwn(text, 2500)}"
    return {"text": f"More on {ref} from its reporter", "blocks": [{"type": "section", "text": _text(msg, "mrkdwn")}]}
