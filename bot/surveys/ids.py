"""The surveys' Slack ids: their actions, the comment modal's callback and the blocks' ids, so
a listener and the view it reads cannot drift apart (the ids shared by several features are in
``bot.ids``; ``tests/test_ids.py`` checks that no id is defined twice)."""

from enum import StrEnum

from bot.ids import Metadata


class SurveyAction(StrEnum):
    answer = "survey_answer"  # prefix: one button per value, "survey_answer:<value>"
    comment = "survey_comment"  # opens the comment modal
    text = "survey_text"  # a text input in the comment modal
    file_comment = "survey_file_comment"  # a host turns a comment into a data point
    csat = "csat_followup"  # prefix: "csat_followup:<score>"


class SurveyCallback(StrEnum):
    comment_modal = "survey_comment_modal"


QUESTION_BLOCK = "survey_q"  # "survey_q:<question id>"
TEXT_BLOCK = "survey_text"  # "survey_text:<question id>" in the modal
COMMENT_BLOCK = "survey_comment"
CSAT_BLOCK = "csat_followup"


class SurveyMetadata(Metadata):
    """The comment modal's: the run it answers."""

    run_id: int
