"""The App Home tab's Slack ids: the host view's two filters (``bot.triage.blocks.build_host_home`` draws them)."""

from enum import StrEnum


class HomeAction(StrEnum):
    filter_category = "home_filter_category"
    filter_status = "home_filter_status"
