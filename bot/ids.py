"""The Slack ids several features share (intake, triage, targets, focus, home, closing): one
StrEnum per kind, so a listener and its view cannot drift apart. A feature's own ids are in its
``bot/<feature>/ids.py``; ``tests/test_ids.py`` checks that no id of a kind is defined twice."""

from enum import StrEnum


class Callback(StrEnum):
    report_modal = "friction_report"
    report_shortcut = "report_friction"  # the message shortcut; manifest.yml names it too
    triage_link = "triage_link"
    target_reply = "target_reply"
    target_ask = "target_ask"
    triage_merge = "triage_merge"
    triage_resolve = "triage_resolve"
    triage_decline = "triage_decline"
    still_broken = "closure_still_broken"


class Block(StrEnum):
    text = "text"
    categories = "categories"
    severity = "severity"
    time_lost = "time_lost"
    kind = "kind"
    link = "link"


class Action(StrEnum):
    text = "text_input"
    target_reply = "target_reply_button"
    target_ask = "target_ask_button"
    focus_pick = "focus_pick"
    focus_drop = "focus_drop"
    focus_publish = "focus_publish"
    categories = "categories_select"
    severity = "severity_select"
    time_lost = "time_lost_select"
    kind = "kind_radio"
    link = "link_input"
    add_details = "add_details"
    triage_assign_me = "triage_assign_me"
    triage_assign = "triage_assign"
    triage_severity = "triage_severity"
    triage_tags = "triage_tags"
    triage_link = "triage_link"
    triage_merge = "triage_merge"
    triage_resolve = "triage_resolve"
    triage_decline = "triage_decline"
    triage_reopen = "triage_reopen"
    triage_merge_suggested = "triage_merge_suggested"
    triage_input = "triage_input"
    home_filter_category = "home_filter_category"
    home_filter_status = "home_filter_status"
    closure_works = "closure_works"
    closure_broken = "closure_broken"
    closure_comment = "closure_comment"
