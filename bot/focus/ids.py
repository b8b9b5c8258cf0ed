"""The quarter's focus' Slack ids: the picker's Pick, Drop and Publish buttons."""

from enum import StrEnum


class FocusAction(StrEnum):
    pick = "focus_pick"  # value: the subject ("report:12", "area:ci")
    drop = "focus_drop"
    publish = "focus_publish"  # value: the period's key
