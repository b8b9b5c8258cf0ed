"""Triage's block ids: the card's blocks (``triage_card:<id>:<part>``) and the triage modals'
input (its actions and callbacks are in ``bot.ids``)."""

CARD_BLOCK = "triage_card"
TRIAGE_INPUT_BLOCK = "triage_input"
