"""The moment-of-use question's answers, as transactions the listeners run (``bot.usage.listeners``):
what a person scored so far, and a comment sealed with it or, by their choice, filed as a friction
report in their own name."""

from sqlmodel import Session

from bot.intake.drafts import new_draft
from bot.intake.filing import file_report
from bot.policy import Policy
from bot.references import format_ref
from bot.surveys.sealing import Keys
from bot.usage import csat
from storage import usage as store
from storage.models import Source


def score_of(*, session: Session, keys: Keys, ask_id: int, user_id: str) -> tuple[str, str, int | None]:
    """(status, capability, the score they gave so far) without changing anything."""
    question = store.get_ask(session=session, ask_id=ask_id)
    if question is None or question.user_id != user_id:
        return "unknown", "", None
    window = store.get_window(session=session, window_id=question.window_id)
    if window is None or window.status != "open" or not window.secret:
        return "closed", question.capability, None
    nonce = f"usage-window:{window.secret}"
    slot = keys.slot(window.id, nonce, user_id)
    for sealed in store.sealed_of(session=session, window_id=window.id):
        if sealed.slot == slot:
            content = keys.open(window.id, nonce, user_id, sealed.sealed) or {}
            return "ok", question.capability, content.get("s")
    return "ok", question.capability, None


def comment_and_file(*, session: Session, keys: Keys, policy: Policy, ask_id: int, user_id: str, team_id: str, enterprise_id: str | None,
                      comment: str, file_it: bool):
    """In one transaction: the comment sealed with the score (anonymous), or, when the person chose
    to file it, a friction report in their name in the capability's area and no comment kept with
    the anonymous answer (so the two cannot be matched later)."""
    done = csat.record(session=session, keys=keys, ask_id=ask_id, user_id=user_id, comment=None if file_it else comment,
                       comment_given=True)
    if done.status != "ok" or not (file_it and comment and done.score is not None and done.score <= csat.LOW_SCORE):
        return done, None
    cap = policy.usage.capability(done.capability)
    draft = new_draft(taxonomy=policy.taxonomy, source=Source.usage, intake_key=f"usage-csat:{ask_id}", team_id=team_id,
                      filed_by=user_id, text=comment, categories=(cap.area,) if cap and cap.area else (), enterprise_id=enterprise_id)
    filed = file_report(session=session, draft=draft, prefix=policy.reference_prefix, triage_channel=policy.triage.channel,
                        confirm_by_dm=True)
    return done, (format_ref(policy.reference_prefix, filed.point.id) if filed else None)
