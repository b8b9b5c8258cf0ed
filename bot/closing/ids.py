"""Closing the loop's block ids (its actions and the still-broken modal's callback are in
``bot.ids``)."""

from bot.ids import Metadata

FEEDBACK_BLOCK = "closure_feedback"
COMMENT_BLOCK = "closure_comment"


class NoticeMetadata(Metadata):
    """The still-broken modal's: the closure notice it answers."""

    notice_id: int
