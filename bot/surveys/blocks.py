"""Pulse-survey messages and modals: the DM (questions as buttons), the comment modal, the
results post, the survey list and the CSAT follow-up DM. Pure builders returning dicts."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from bot.policy import Survey, SurveyQuestion
from bot.surveys.ids import COMMENT_BLOCK, CSAT_BLOCK, QUESTION_BLOCK, TEXT_BLOCK, SurveyAction, SurveyCallback, SurveyMetadata  # noqa: F401  (re-exported)
from bot.text import fit, mrkdwn, shorten, to_mrkdwn

if TYPE_CHECKING:  # the results are built in bot.surveys, which renders with these builders
    from bot.surveys.results import Comment, QuestionResult, RunResults

MAX_BLOCKS = 50
MAX_COMMENTS = 20  # listed in a results post; the rest are counted
TEXT_MAX = 2000  # characters of a free-text answer or comment


NPS_HINT = "0 = not at all likely · 10 = extremely likely"
CSAT_HINT = "1 = very dissatisfied · 5 = very satisfied"
CSAT_FOLLOWUP_LABELS = {1: "1 · Not at all", 2: "2", 3: "3 · Partly", 4: "4", 5: "5 · Completely"}


def _text(t: str, kind: str = "plain_text") -> dict:
    return {"type": kind, "text": t} | ({"emoji": True} if kind == "plain_text" else {})


def _md(t: str) -> dict:
    return _text(fit(t), "mrkdwn")  # cut as sent, after escaping


def when(moment: datetime) -> str:
    """A time shown in each reader's own time zone (Slack's date formatting), with a UTC fallback."""
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} at {{time}}|{moment:%Y-%m-%d %H:%M} UTC>"


def segment_label(segment: str) -> str:
    """A results group as shown: a channel as its link (which notifies no one), a user group as
    text, never ``<!subteam^…>`` (in the results channel it would ping the whole group)."""
    kind, _, ident = segment.partition(":")
    if kind == "channel" and ident.isalnum():
        return f"<#{ident}>"
    if kind == "usergroup":
        return to_mrkdwn(f"user group {ident}")
    return to_mrkdwn(segment)


def privacy_note(survey: Survey, results_channel: str | None) -> str:
    where = f" Results are shared in <#{results_channel}>." if results_channel else ""
    if survey.anonymous:
        return (
            f":lock: *Anonymous.* Your name is not stored with your answers. The platform team sees totals, "
            f"results for groups of {survey.min_group} or more people, and comments without names.{where}"
        )
    return f":bust_in_silhouette: *Not anonymous.* The platform team sees your name next to your answers and comments.{where}"


def _value_buttons(run_id: int, question: SurveyQuestion, chosen: str | None) -> list[dict]:
    if question.kind == "nps":
        values = [(str(v), str(v)) for v in range(11)]
    elif question.kind == "csat":
        values = [(str(v), str(v)) for v in range(1, 6)]
    else:
        values = [(str(i), shorten(o, 75)) for i, o in enumerate(question.options)]
    buttons = []
    for raw, label in values:
        button = {"type": "button", "action_id": f"{SurveyAction.answer}:{raw}", "text": _text(label), "value": f"{run_id}|{question.id}|{raw}"}
        if raw == chosen:
            button["style"] = "primary"
        buttons.append(button)
    return buttons


def build_survey_dm(
    *,
    run_id: int,
    survey: Survey,
    closes_at: datetime,
    results_channel: str | None,
    reminder: int = 0,
    last_call: bool = False,
    chosen: dict[str, str] | None = None,
    texts: dict[str, str] | None = None,
    comment: str | None = None,
    saved: bool = False,
) -> dict:
    """The survey DM: each question with its answer buttons (the chosen one highlighted), free
    text and a comment through a modal, and plainly who sees the answers."""
    chosen, texts = chosen or {}, texts or {}
    title = survey.display_title
    if reminder:
        lead = f":alarm_clock: *Last call:* this survey closes {when(closes_at)}." if last_call else ":wave: *A reminder:* we'd still love your answer."
    else:
        lead = ":wave: The platform team would like to know how things are going. It takes a minute."
    blocks: list[dict] = [
        {"type": "header", "text": _text(shorten(title, 150))},
        {"type": "section", "text": _md(lead)},
        {"type": "context", "elements": [_md(privacy_note(survey, results_channel))]},
    ]
    for n, question in enumerate(survey.questions, 1):
        block_id = f"{QUESTION_BLOCK}:{question.id}"
        heading = f"*{n}. {to_mrkdwn(question.text)}*"
        if question.kind == "text":
            answer = texts.get(question.id)
            shown = heading + (f"\n>{mrkdwn(answer, 300)}" if answer else "")
            blocks.append({
                "type": "section", "block_id": block_id, "text": _md(shown),
                "accessory": {"type": "button", "action_id": SurveyAction.comment, "text": _text("Change" if answer else "Write an answer"),
                              "value": str(run_id)},
            })
            continue
        blocks.append({"type": "section", "text": _md(heading)})
        blocks.append({"type": "actions", "block_id": block_id, "elements": _value_buttons(run_id, question, chosen.get(question.id))})
        if question.kind in ("nps", "csat"):
            blocks.append({"type": "context", "elements": [_md(NPS_HINT if question.kind == "nps" else CSAT_HINT)]})
    comment_line = f"Your comment:\n>{mrkdwn(comment, 300)}" if comment else "Anything else? Add a comment (optional)."
    blocks.append({
        "type": "section", "block_id": COMMENT_BLOCK, "text": _md(comment_line),
        "accessory": {"type": "button", "action_id": SurveyAction.comment, "text": _text("Edit comment" if comment else "Add a comment"), "value": str(run_id)},
    })
    status = ":white_check_mark: Saved. " if saved else ""
    blocks.append({"type": "context", "elements": [_md(
        f"{status}You can change your answers until {when(closes_at)}. "
        "Rather not get surveys? `/platform-feedback surveys off`."
    )]})
    text = f"{'Reminder: ' if reminder else ''}{mrkdwn(title, 100)} (a short survey from the platform team)"
    return {"text": text, "blocks": blocks[:MAX_BLOCKS]}


def build_closed_notice() -> dict:
    msg = "This survey has closed, so we can't count that answer. Thank you for taking the time all the same."
    return {"text": msg, "blocks": [{"type": "section", "text": _md(f":hourglass: {msg}")}]}


def build_comment_modal(run_id: int, survey: Survey, *, texts: dict[str, str], comment: str | None) -> dict:
    blocks: list[dict] = []
    for question in survey.questions:
        if question.kind != "text":
            continue
        element = {"type": "plain_text_input", "action_id": SurveyAction.text, "multiline": True, "max_length": TEXT_MAX}
        if texts.get(question.id):
            element["initial_value"] = texts[question.id][:TEXT_MAX]
        blocks.append({"type": "input", "block_id": f"{TEXT_BLOCK}:{question.id}", "optional": True,
                       "label": _text(shorten(question.text, 2000)), "element": element})
    element = {"type": "plain_text_input", "action_id": SurveyAction.text, "multiline": True, "max_length": TEXT_MAX}
    if comment:
        element["initial_value"] = comment[:TEXT_MAX]
    blocks.append({"type": "input", "block_id": COMMENT_BLOCK, "optional": True, "label": _text("Anything else? (optional)"), "element": element})
    note = "Anonymous: your name is not stored with what you write." if survey.anonymous else "Not anonymous: the platform team sees your name with this."
    blocks.append({"type": "context", "elements": [_md(note)]})
    return {
        "type": "modal",
        "callback_id": SurveyCallback.comment_modal,
        "title": _text("Your answer"),
        "submit": _text("Save"),
        "close": _text("Cancel"),
        "private_metadata": SurveyMetadata(run_id=run_id).dump(),
        "blocks": blocks,
    }


def build_saved_view() -> dict:
    return {"type": "modal", "title": _text("Thanks"), "close": _text("Close"),
            "blocks": [{"type": "section", "text": _md(":white_check_mark: Saved. You can change it until the survey closes.")}]}


# ------------------------------------------------------------------ results


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}%"


def _score(name: str | None, value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:+.0f}" if name == "NPS" else f"{value:.2f}"


def _bar(count: int, total: int, width: int = 12) -> str:
    filled = round(width * count / total) if total else 0
    return "█" * filled + "·" * (width - filled)


def _question_lines(qr: QuestionResult) -> str:
    head = f"*{mrkdwn(qr.question.text, 200)}* · {qr.count} answer{'s' if qr.count != 1 else ''}"
    if qr.count == 0:
        return head
    if qr.question.kind == "nps":
        return (f"{head}\n*NPS {_score('NPS', qr.score)}* · promoters (9-10) {_pct(qr.promoters)}, "
                f"passives (7-8) {_pct(qr.passives)}, detractors (0-6) {_pct(qr.detractors)}")
    if qr.question.kind == "csat":
        rows = "\n".join(f"`{v}` {_bar(n, qr.count)} {n}" for v, n in qr.distribution.items())
        return f"{head}\n*Average {qr.score:.2f} / 5* · {_pct(qr.satisfied)} satisfied (4-5)\n{rows}"
    if qr.question.kind == "choice":
        rows = "\n".join(f"{_bar(n, qr.count)} {n} · {to_mrkdwn(o)}" for o, n in qr.distribution.items())
        return f"{head}\n{rows}"
    return f"{head} (in the comments below)"


def _comment_block(comment: Comment, survey: Survey, with_button: bool) -> dict:
    where = next((q.text for q in survey.questions if q.id == comment.question), None)
    label = f"_{mrkdwn(where, 80)}_\n" if where else ""
    who = f" — <@{comment.user_id}>" if comment.user_id else ""
    block = {"type": "section", "text": _md(f"{label}>{mrkdwn(comment.text, 600)}{who}")}
    if with_button:
        block["accessory"] = {"type": "button", "action_id": SurveyAction.file_comment, "text": _text("File as friction"),
                              "value": f"{comment.response_id}|{comment.question or ''}"}
    return block


def build_results(results: RunResults, *, command: str | None = None) -> dict:
    """The results post (and the on-demand answer): rate, scores, change, segments, comments."""
    run, survey = results.run, results.survey
    final = run.status == "closed"
    title = f"Survey results: {survey.display_title}" if final else f"Survey so far: {survey.display_title}"
    if not final:
        # Answers stay sealed until the close: nothing shown now can be compared with a later look.
        asked = results.delivered or results.recipients
        summary = (f"Open until {when(run.closes_at)}; {asked} {'person' if asked == 1 else 'people'} asked so far. "
                   "Answers are sealed until it closes: the results, and how many answered, are shown then.")
        return {"text": f"{to_mrkdwn(title)}: open", "blocks": [{"type": "header", "text": _text(shorten(title, 150))},
                                                     {"type": "section", "text": _md(summary)}]}
    rate = f" ({results.rate:.0f}%)" if results.rate is not None else ""
    summary = f"*{results.responses}* of {results.delivered or results.recipients} people answered{rate}."
    summary += f" Ran {when(run.started_at)} – {when(run.closed_at or run.closes_at)}."
    if results.score_name and results.score is not None:
        summary += f"\n*{results.score_name} {_score(results.score_name, results.score)}*"
        if results.change is not None:
            prev = results.previous
            assert prev is not None  # a change is against the previous run
            arrow = ":arrow_up:" if results.change > 0 else ":arrow_down:" if results.change < 0 else ":left_right_arrow:"
            summary += f" {arrow} {results.change:+g} vs. the previous run ({_score(results.score_name, prev.score)})"
        elif results.previous is None:
            summary += " · first run"
    blocks: list[dict] = [{"type": "header", "text": _text(shorten(title, 150))}, {"type": "section", "text": _md(summary)}]
    if results.withheld:
        blocks.append({"type": "section", "text": _md(
            f":lock: Fewer than {survey.min_group} people answered this anonymous survey, so only the count is shown.")})
    else:
        for qr in results.questions:
            blocks.append({"type": "section", "text": _md(shorten(_question_lines(qr), 3000))})
        if results.segments:
            lines = [f"• {segment_label(s.segment)}: {s.responses} answered"
                     + (f" of {s.delivered}" if s.delivered else "")
                     + (f" · {results.score_name} {_score(results.score_name, s.score)}" if s.score is not None else "")
                     for s in results.segments]
            if results.hidden_segments:
                lines.append(f"• {results.hidden_segments} answer{'s' if results.hidden_segments != 1 else ''} in smaller or no groups (not shown)")
            blocks.append({"type": "section", "text": _md(shorten(f"*By group* (only groups where {survey.min_group}+ answered)\n" + "\n".join(lines), 3000))})
        if results.comments:
            blocks.append({"type": "section", "text": _md(f"*Comments* ({len(results.comments)})" + (" · names are not kept" if run.anonymous else ""))})
            room = MAX_BLOCKS - len(blocks) - 2
            for comment in results.comments[: min(MAX_COMMENTS, room)]:
                blocks.append(_comment_block(comment, survey, with_button=True))
            rest = len(results.comments) - min(MAX_COMMENTS, room)
            if rest > 0:
                more = f"…and {rest} more." + (f" `{command}` lists them." if command else "")
                blocks.append({"type": "context", "elements": [_md(more)]})
    blocks.append({"type": "context", "elements": [_md("Anonymous survey: no names are kept with answers." if run.anonymous
                                                       else "Not anonymous: answers were given by name.")]})
    text = f"{to_mrkdwn(title)}: {results.responses} answered"
    if results.score_name and results.score is not None:
        text += f", {results.score_name} {_score(results.score_name, results.score)}"
    return {"text": text, "blocks": blocks[:MAX_BLOCKS]}


def chart_comment(results: RunResults) -> str:
    name = results.score_name or "Score"
    return f"{to_mrkdwn(results.survey.display_title)}: {name} over the last runs."


# ------------------------------------------------------------------ list, opt-out


def build_surveys_list(surveys: list[Survey], *, live: dict[str, datetime], next_runs: dict[str, datetime | None], opted_out: bool) -> dict:
    if not surveys:
        msg = "No pulse surveys are set up."
        return {"text": msg, "blocks": [{"type": "section", "text": _md(msg)}]}
    lines = []
    for s in surveys[:40]:
        schedule = f"`{s.schedule}` ({s.timezone})" if s.schedule else "sent by hand"
        extra = f" · open until {when(live[s.name])}" if s.name in live else ""
        nxt = f" · next {when(at)}" if (at := next_runs.get(s.name)) else ""
        kinds = ", ".join(sorted({q.kind.upper() if q.kind in ('nps', 'csat') else q.kind for q in s.questions}))
        lines.append(f"• *{to_mrkdwn(s.name)}*: {to_mrkdwn(s.display_title)} · {kinds} · {schedule}{nxt}{extra} · "
                     f"{'anonymous' if s.anonymous else 'not anonymous'}")
    you = ("You have opted out of survey DMs: `/platform-feedback surveys on` to get them again."
           if opted_out else "Rather not get them? `/platform-feedback surveys off`.")
    text = "*Pulse surveys*\n" + "\n".join(lines)
    return {"text": "Pulse surveys", "blocks": [{"type": "section", "text": _md(shorten(text, 3000))},
                                                 {"type": "context", "elements": [_md(you)]}]}


def build_opt_out_answer(out: bool) -> dict:
    msg = ("Done: you won't get survey DMs any more. `/platform-feedback surveys on` turns them back on."
           if out else "Done: you'll get survey DMs again. Thank you!")
    return {"text": msg}


# ------------------------------------------------------------------ CSAT follow-up


def build_csat_dm(ref: str, point_text: str, question: str, followup_id: int, *, chosen: int | None = None, note: str | None = None) -> dict:
    said = f"Your report *{ref}* was resolved:\n>{mrkdwn(point_text, 280)}"
    if note:
        said += f"\n_{mrkdwn(note, 300)}_"
    buttons = []
    for score, label in CSAT_FOLLOWUP_LABELS.items():
        button = {"type": "button", "action_id": f"{SurveyAction.csat}:{score}", "text": _text(label), "value": f"{followup_id}|{score}"}
        if score == chosen:
            button["style"] = "primary"
        buttons.append(button)
    blocks = [
        {"type": "section", "text": _md(said)},
        {"type": "section", "text": _md(f"*{to_mrkdwn(question)}*")},
        {"type": "actions", "block_id": CSAT_BLOCK, "elements": buttons},
        {"type": "context", "elements": [_md(
            ":white_check_mark: Thanks, noted. You can change it by pressing another." if chosen
            else "The platform team sees your answer with your name, to follow up if it did not help.")]},
    ]
    return {"text": f"{ref} was resolved. {mrkdwn(question, 200)}", "blocks": blocks}
