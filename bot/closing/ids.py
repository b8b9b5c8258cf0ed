"""Closing the loop's Slack ids: the closure notice's buttons, the still-broken modal's callback,
block and input, and that modal's ``private_metadata`` (the ids several features share are in
``bot.ids``; ``tests/test_ids.py`` checks none is defined twice)."""

from enum import StrEnum

from bot.ids import Metadata

FEEDBACK_BLOCK = "closure_feedback"
COMMENT_BLOCK = "closure_comment"


class ClosingAction(StrEnum):
    works = "closure_works"
    broken = "closure_broken"
    comment = "closure_comment"  # the still-broken modal's text input


class ClosingCallback(StrEnum):
    still_broken = "closure_still_broken"


class NoticeMetadata(Metadata):
    """The still-broken modal's: the closure notice it answers."""

    notice_id: int
