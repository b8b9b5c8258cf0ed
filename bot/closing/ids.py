"""Closing the loop's block ids (its actions and the still-broken modal's callback are in
``bot.ids``)."""

FEEDBACK_BLOCK = "closure_feedback"
COMMENT_BLOCK = "closure_comment"
