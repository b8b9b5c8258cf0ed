"""Triage's Slack ids: the card's actions, the triage modals' callbacks and input, and the card's
block ids (``triage_card:<id>:<part>``), so a listener and the view it reads cannot drift apart
(the ids several features share are in ``bot.ids``; ``tests/test_ids.py`` checks none is defined twice)."""

from enum import StrEnum

CARD_BLOCK = "triage_card"
TRIAGE_INPUT_BLOCK = "triage_input"


class TriageAction(StrEnum):
    assign_me = "triage_assign_me"
    assign = "triage_assign"
    severity = "triage_severity"
    tags = "triage_tags"
    link = "triage_link"
    merge = "triage_merge"
    resolve = "triage_resolve"
    decline = "triage_decline"
    reopen = "triage_reopen"
    merge_suggested = "triage_merge_suggested"
    text = "triage_input"  # the triage modals' text input


class TriageCallback(StrEnum):
    link = "triage_link"
    merge = "triage_merge"
    resolve = "triage_resolve"
    decline = "triage_decline"
