"""Pulse surveys in Slack: the answer buttons and comment modal, the CSAT follow-up buttons, a
host filing a comment, and the ``surveys`` / ``survey`` commands. Each listener parses the
payload, calls one operation (``bot.surveys.answers``, ``.csat``, ``.runs``) and renders with
``bot.surveys.blocks``; runs, reminders and closing live in ``bot.surveys.runs`` (see there for how
a run stays exactly-once across restarts and instances). The app's one runner, whose keys seal
answers, is ``deps.once(runner_for)`` (``bot.surveys.slack_reads``); its jobs are ``bot.surveys.jobs``."""

import re

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.intake.service import flatten_state
from bot.runtime.context import Deps, Subcommand
from bot.runtime.listening import answers_outage
from bot.surveys.answers import Answering, current_answers, file_comment, record_answer, record_texts, set_opt_out
from bot.surveys.blocks import (
    COMMENT_BLOCK,
    TEXT_BLOCK,
    SurveyAction,
    SurveyCallback,
    build_closed_notice,
    build_comment_modal,
    build_csat_dm,
    build_opt_out_answer,
    build_results,
    build_saved_view,
    build_survey_dm,
    build_surveys_list,
)
from bot.surveys.csat import answer_csat
from bot.surveys.ids import SurveyMetadata
from bot.surveys.runs import SurveyError, latest_results, overview, results_channel
from bot.surveys.slack_reads import runner_for
from bot.surveys.timing import next_fire
from bot.text import from_slack
from storage.models import as_utc, utcnow

NOT_A_HOST = "Only platform hosts can do that. Nothing was changed."
KEPT = "Your answers are saved, but they can no longer be changed in this survey (the bot's secret was changed since)."
USAGE = ("Usage: `/platform-feedback survey send NAME [now]` starts a run (by default each person gets it at the "
         "survey's delivery hour in their own time zone); `/platform-feedback survey results NAME` shows the latest results. "
         "`/platform-feedback surveys` lists the surveys; `surveys off` / `surveys on` stops or restarts your survey DMs.")


def _parts(value: object, n: int) -> list[str] | None:
    parts = value.split("|") if isinstance(value, str) else []
    return parts if len(parts) == n else None


async def _tell(respond: AsyncRespond, message: dict | str) -> None:
    message = {"text": message} if isinstance(message, str) else message
    await respond(response_type="ephemeral", replace_original=False, **message)


# ---------------------------------------------------------- answering


async def _saved(respond: AsyncRespond, state: Answering) -> bool:
    """True when the person's answers were read (``state.status`` "saved"); else they are told why
    not: the survey closed, or their answers are kept from before (``KEPT``)."""
    if state.status == "closed":
        await _tell(respond, build_closed_notice())
    elif state.status == "kept":
        await _tell(respond, KEPT)
    return state.status == "saved"


@answers_outage("your answer")
async def on_answer(ack: AsyncAck, body: dict, action: dict, respond: AsyncRespond, deps: Deps) -> None:
    """An answer button in the survey DM: sealed, and the DM shows it chosen."""
    await ack()
    parts = _parts(action.get("value"), 3)
    if not parts or not parts[0].isdigit():
        return
    run_id, question_id, raw = int(parts[0]), parts[1], parts[2]
    keys = deps.once(runner_for).keys
    state = await deps.db.run(record_answer, keys=keys, run_id=run_id, user_id=body["user"]["id"], question_id=question_id, raw=raw)
    if await _saved(respond, state):
        assert state.run is not None and state.survey is not None  # a saved answer's run and survey were read
        dm = build_survey_dm(run_id=run_id, survey=state.survey, closes_at=as_utc(state.run.closes_at),
                             results_channel=results_channel(state.survey, deps.policy), chosen=state.chosen, texts=state.texts,
                             comment=state.comment, saved=True)
        await respond(replace_original=True, **dm)


@answers_outage("your comment")
async def on_comment_button(ack: AsyncAck, body: dict, action: dict, client: AsyncWebClient, respond: AsyncRespond, deps: Deps) -> None:
    """"Add a comment" in the survey DM: the comment modal with what they wrote so far."""
    await ack()
    value = action.get("value")
    if not isinstance(value, str) or not value.isdigit():
        return
    state = await deps.db.run(current_answers, keys=deps.once(runner_for).keys, run_id=int(value), user_id=body["user"]["id"])
    if await _saved(respond, state):
        assert state.run is not None and state.survey is not None  # a saved answer's run and survey were read
        view = build_comment_modal(state.run.id, state.survey, texts=state.texts or {}, comment=state.comment)
        await client.views_open(trigger_id=body["trigger_id"], view=view)


@answers_outage("your comment", block=COMMENT_BLOCK)
async def on_comment_submitted(ack: AsyncAck, body: dict, view: dict, deps: Deps) -> None:
    """The comment modal: stored sealed before the ack (the form stays open when it cannot be)."""
    try:
        run_id = SurveyMetadata.load(view.get("private_metadata")).run_id
    except ValueError:
        await ack(response_action="errors", errors={COMMENT_BLOCK: "This form is out of date. Please open it again."})
        return
    state_values = flatten_state(view.get("state", {}).get("values"))
    texts = {block.split(":", 1)[1]: from_slack(str(v or "")).strip()[:2000]
             for block, v in state_values.items() if block.startswith(f"{TEXT_BLOCK}:")}
    comment = from_slack(str(state_values.get(COMMENT_BLOCK) or "")).strip()[:2000]
    user = body["user"]["id"]
    state = await deps.db.run(record_texts, keys=deps.once(runner_for).keys, run_id=run_id, user_id=user, texts=texts, comment=comment)
    if state.status in ("closed", "kept"):
        await ack(response_action="errors", errors={COMMENT_BLOCK: build_closed_notice()["text"] if state.status == "closed" else KEPT})
        return
    if state.status != "saved":
        await ack(response_action="errors", errors={COMMENT_BLOCK: "This survey is not one you were asked to answer."})
        return
    await ack(response_action="update", view=build_saved_view())


@answers_outage("your answer")
async def on_csat(ack: AsyncAck, body: dict, action: dict, respond: AsyncRespond, deps: Deps) -> None:
    """A score in the CSAT follow-up DM ("did this solve your problem?")."""
    await ack()
    parts = _parts(action.get("value"), 2)
    if not parts or not parts[0].isdigit() or parts[1] not in {"1", "2", "3", "4", "5"}:
        return
    answered = await deps.db.run(answer_csat, followup_id=int(parts[0]), user_id=body["user"]["id"], score=int(parts[1]))
    if answered is None:
        return
    followup, point = answered
    await respond(replace_original=True, **build_csat_dm(deps.ref(point.id), point.text, deps.policy.csat_followup.question, followup.id,
                                                         chosen=followup.score, note=point.resolution_note))


# ---------------------------------------------------------- hosts


@answers_outage("that data point")
async def on_file_comment(ack: AsyncAck, body: dict, action: dict, respond: AsyncRespond, deps: Deps) -> None:
    """A host turns a survey comment (in the results) into a data point."""
    await ack()
    user = body["user"]["id"]
    if not await deps.hosts.is_host(user):
        await _tell(respond, NOT_A_HOST)
        return
    parts = _parts(action.get("value"), 2)
    if not parts:
        return
    team = (body.get("team") or {}).get("id") or body["user"].get("team_id") or ""
    try:
        message = await deps.db.run(file_comment, response_id=parts[0], question_id=parts[1] or None, host=user, team_id=team,
                                    policy=deps.policy)
    except SurveyError as exc:
        message = str(exc)
    deps.sender.wake()
    await _tell(respond, message)


async def surveys_command(deps: Deps, user: str, args: str, respond: AsyncRespond, client: AsyncWebClient, trigger_id: str) -> None:
    """``/platform-feedback surveys [list|off|on]``: the surveys, or stop / restart your survey DMs."""
    word = args.strip().lower()
    if word in ("off", "on"):
        await deps.db.run(set_opt_out, user_id=user, out=word == "off")
        await _tell(respond, build_opt_out_answer(word == "off"))
        return
    if word not in ("", "list"):
        await _tell(respond, USAGE)
        return
    live, out = await deps.db.run(overview, user_id=user)
    now = utcnow()
    surveys = deps.policy.surveys
    await _tell(respond, build_surveys_list(surveys, live=live, next_runs={s.name: next_fire(s, now) for s in surveys}, opted_out=out))


async def survey_command(deps: Deps, user: str, args: str, respond: AsyncRespond, client: AsyncWebClient, trigger_id: str) -> None:
    """``/platform-feedback survey send NAME [now]`` / ``survey results NAME`` (hosts)."""
    words = args.split()
    if len(words) < 2 or words[0].lower() not in ("send", "results") or (words[0].lower() == "send" and len(words) > 3):
        await _tell(respond, USAGE)
        return
    if not await deps.hosts.is_host(user):
        await _tell(respond, NOT_A_HOST)
        return
    survey = next((s for s in deps.policy.surveys if s.name == words[1]), None)
    if survey is None:
        await _tell(respond, f"There is no survey named `{words[1][:40]}`; `/platform-feedback surveys` lists them.")
        return
    try:
        if words[0].lower() == "send":
            runner = deps.once(runner_for)
            now = len(words) == 3 and words[2].lower() == "now"
            run = await runner.start(survey, started_by=user, deliver_now=now)
            when = "now" if now else f"at {survey.delivery_hour:02d}:00 in each person's own time zone"
            await _tell(respond, f"Started {survey.name} (run {run.id}). I'm finding who to ask; the DMs go out {when}.")
            runner.kick()
            return
        results = await deps.db.run(latest_results, survey=survey.name)
        if results is None:
            await _tell(respond, f"{survey.name} has not run yet.")
            return
    except SurveyError as exc:
        await _tell(respond, str(exc))
        return
    await _tell(respond, build_results(results))


COMMANDS: dict[str, Subcommand] = {"surveys": surveys_command, "survey": survey_command}


def register(app: AsyncApp) -> None:
    """The wiring table: which Slack request each listener answers."""
    app.action(re.compile(rf"^{SurveyAction.answer}:"))(on_answer)
    app.action(SurveyAction.comment)(on_comment_button)
    app.view(SurveyCallback.comment_modal)(on_comment_submitted)
    app.action(re.compile(rf"^{SurveyAction.csat}:"))(on_csat)
    app.action(SurveyAction.file_comment)(on_file_comment)
