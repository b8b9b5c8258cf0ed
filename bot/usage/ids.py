"""Every action, callback and block id of the moment-of-use question, in one place, so the DM, the
modal and their listeners cannot drift apart."""

from enum import StrEnum


class UsageAction(StrEnum):
    score = "usage_csat_score"  # the 1-5 buttons, "usage_csat_score:N"; value "ASK|N"
    comment = "usage_csat_comment"  # "What got in the way?": opens the modal; value "ASK"


class UsageCallback(StrEnum):
    comment_modal = "usage_csat_comment_modal"


class UsageBlock(StrEnum):
    scores = "usage_csat_scores"
    comment = "usage_csat_comment_text"
    file = "usage_csat_file"


COMMENT_INPUT = "comment_input"
FILE_CHOICE = "file_choice"
FILE_VALUE = "file"

# Answering is not observed in /metrics at all (bot.runtime.metrics.UNOBSERVED): lined up with
# the DMs' times, even a bare count could tell who answered.
UNOBSERVED = frozenset({f"action:{UsageAction.score}", f"action:{UsageAction.comment}", f"view:{UsageCallback.comment_modal}"})
