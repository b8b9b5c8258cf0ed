"""Response targets' Slack ids: the reporter's Reply button and answer modal, the host's Ask button
and question modal, and their blocks and inputs."""

from enum import StrEnum

REPLY_BLOCK, REPLY_INPUT = "target_reply", "target_reply_input"
ASK_BLOCK, ASK_INPUT = "target_ask", "target_ask_input"


class TargetAction(StrEnum):
    reply = "target_reply_button"
    ask = "target_ask_button"


class TargetCallback(StrEnum):
    reply = "target_reply"
    ask = "target_ask"
