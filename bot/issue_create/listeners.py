"""Slack listeners for creating an issue from a card and for relaying updates: module-level
functions; ``register`` only wires them (each listener gets ``deps`` from its context).

Acking the modal: a tracker's create can take seconds (GitHub documents no latency bound; a 429
is waited out; a timeout is followed by a search), more than Slack's 3 s for a view submission
(SLACK_FACTS.md §2). So the submission is checked (host, fields) and acked at once with
``response_action: update`` to a "Creating…" view, and the work runs after the ack; its outcome
replaces that view (``views.update`` on the same view id): the issue's link, or the form again with
the tracker's one-line answer on top and the host's words kept, so they can fix it and resubmit.
A host who closed the modal meanwhile is told the outcome in one DM line instead (the card shows
the link either way).
"""

import logging
from datetime import datetime, timezone

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.intake.service import first_word, flatten_state
from bot.issue_create import service
from bot.issue_create.blocks import IssueMetadata, build_done_view, build_issue_modal, build_note_view, build_working_view
from bot.issue_create.ids import IssueAction, IssueBlock, IssueCallback
from bot.progress.service import UpdateRefused, record_host_update
from bot.references import format_ref, parse_ref
from bot.runtime.context import Deps, Subcommand
from bot.runtime.listening import try_again
from bot.runtime.slack_reads import read_deadline
from bot.triage.service import TriageError
from storage.database import DatabaseUnavailable

log = logging.getLogger(__name__)

NOT_A_HOST = "Only office-hours hosts can create issues or relay updates. Nothing was changed."
NO_PROJECTS = "No tracker projects are set: add them under issues.projects in the policy (docs/closing-the-loop.md)."
ACK_BUDGET = 2.0  # seconds the submission may spend on the host check before it acks


async def _open_modal(deps: Deps, user: str, point_id: int | None, trigger_id: str, client: AsyncWebClient) -> str | None:
    """Open the form for ``point_id``; what to tell ``user`` instead, if anything."""
    if not await deps.hosts.is_host(user):
        return NOT_A_HOST
    if not deps.policy.issues.projects:
        return NO_PROJECTS
    if point_id is None:
        return f"Usage: `/platform-feedback issue {deps.policy.reference_prefix}-12`."
    try:
        d = await deps.db.run(service.draft, policy=deps.policy, point_id=point_id)
    except TriageError as exc:
        return str(exc)
    except DatabaseUnavailable:  # (not answers_outage: from App Home this goes as a DM line)
        return try_again("the issue form")["text"]
    try:
        await client.views_open(trigger_id=trigger_id, view=build_issue_modal(d))
    except SlackApiError as exc:
        log.info("issue form not opened: %s", exc.response.get("error"))
        return "Slack did not open the form in time: click *Create issue* again."
    return None


async def on_open(ack: AsyncAck, body: dict, action: dict, client: AsyncWebClient, respond: AsyncRespond, deps: Deps) -> None:
    """The card's or App Home's "Create issue" button."""
    await ack()
    value = action.get("value") or ""
    error = await _open_modal(deps, body["user"]["id"], int(value) if value.isdigit() else None, body["trigger_id"], client)
    if error:
        if body.get("response_url") or (body.get("container") or {}).get("type") == "message":
            await respond(response_type="ephemeral", replace_original=False, text=error)
        else:  # App Home: no response_url; a DM line
            await client.chat_postMessage(channel=body["user"]["id"], text=error)


def _answers(view: dict) -> dict:
    values = flatten_state(view["state"]["values"])
    return {"project": str(values.get(IssueBlock.project) or ""), "title": str(values.get(IssueBlock.issue_title) or "").strip(),
            "description": str(values.get(IssueBlock.description) or "").strip(), "labels": str(values.get(IssueBlock.labels) or "")}


async def on_submit(ack: AsyncAck, body: dict, view: dict, client: AsyncWebClient, deps: Deps) -> None:
    """Checked and acked at once (see the module docstring); created after the ack."""
    user, answers = body["user"]["id"], _answers(view)
    point_id = IssueMetadata.load(view.get("private_metadata") or "").point_id
    project = deps.policy.issues.find(answers["project"])
    if project is None:
        await ack(response_action="errors", errors={IssueBlock.project: "Pick a project from the list."})
        return
    if not answers["title"]:
        await ack(response_action="errors", errors={IssueBlock.issue_title: "Give the issue a title."})
        return
    with read_deadline(ACK_BUDGET):
        host = await deps.hosts.is_host(user)
    if not host:
        await ack(response_action="errors", errors={IssueBlock.project: NOT_A_HOST})
        return
    ref = deps.ref(point_id)
    await ack(response_action="update", view=build_working_view(ref, project.tracker, project.project))
    labels = [ln.strip() for ln in answers["labels"].split(",") if ln.strip()][:20]
    try:
        result = await deps.once(service.creator_for).create(point_id=point_id, project=project, title=answers["title"],
                                                             description=answers["description"], labels=labels, actor=user)
    except TriageError as exc:
        result = service.Result(False, str(exc), busy=True)
    except DatabaseUnavailable:
        result = service.Result(False, "The bot's database did not answer: press Create again in a minute (no second issue is made).")
    except Exception:  # noqa: BLE001 - acked already: the host is told, never left with "Creating…"
        log.exception("creating %s's issue failed", ref)
        result = service.Result(False, "Something went wrong while creating the issue: press Create again in a minute "
                                       "(the bot looks for it first, so no second issue is made).")
    if result.ok:
        deps.sender.wake()  # the card's redraw and the reporters' "linked" DMs
        assert result.key is not None and result.url is not None  # an ok result names the linked issue
        shown = build_done_view(ref, result.key, result.url, result.message)
    elif result.busy:
        shown = build_note_view(result.message)
    else:
        try:
            d = await deps.db.run(service.draft, policy=deps.policy, point_id=point_id)
            shown = build_issue_modal(d, problem=result.message, title=answers["title"], description=answers["description"],
                                      labels=answers["labels"], project=project.ident)
        except (TriageError, DatabaseUnavailable):
            shown = build_note_view(result.message)
    try:
        await client.views_update(view_id=view["id"], view=shown)
    except SlackApiError as exc:  # the host closed the modal: tell them in one DM line
        log.info("issue view not updated: %s", exc.response.get("error"))
        text = f"{ref}: {result.message}" + (f" {result.url}" if result.ok and result.url else "")
        await client.chat_postMessage(channel=user, text=text)


async def issue_command(deps: Deps, user: str, args: str, respond: AsyncRespond, client: AsyncWebClient, trigger_id: str) -> None:
    """``/platform-feedback issue FB-12``: the same form as the card's button."""
    ref, _ = first_word(args)
    error = await _open_modal(deps, user, parse_ref(deps.policy.reference_prefix, ref), trigger_id, client)
    if error:
        await respond(response_type="ephemeral", text=error)


async def update_command(deps: Deps, user: str, args: str, respond: AsyncRespond, client: AsyncWebClient, trigger_id: str) -> None:
    """``/platform-feedback update FB-12 <text>``: kept for the next daily batch to the reporters."""
    prefix = deps.policy.reference_prefix
    ref, text = first_word(args)
    point_id = parse_ref(prefix, ref)
    if point_id is None or not text.strip():
        await respond(response_type="ephemeral", text=f"Usage: `/platform-feedback update {prefix}-12 <what changed>`.")
        return
    if not await deps.hosts.is_host(user):
        await respond(response_type="ephemeral", text=NOT_A_HOST)
        return
    day = datetime.now(timezone.utc).date().isoformat()
    try:
        kept = await deps.db.run(record_host_update, policy=deps.policy, point_id=point_id, actor=user, text=text.strip(), day=day)
    except UpdateRefused as exc:
        await respond(response_type="ephemeral", text=str(exc))
        return
    hour = deps.policy.issues.progress.update_hour
    said = "Kept" if kept else "Already kept today"
    await respond(response_type="ephemeral", text=f"{said}: {format_ref(prefix, point_id)}'s reporters get it in the daily update at {hour:02d}:00 UTC.")


COMMANDS: dict[str, Subcommand] = {"issue": issue_command, "update": update_command}


def register(app: AsyncApp) -> None:
    """The wiring table: which Slack request each listener answers."""
    app.action(IssueAction.open)(on_open)
    app.view(IssueCallback.modal)(on_submit)
