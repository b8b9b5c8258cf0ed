"""Every callback, block and action id, so a handler and its view cannot drift apart."""

from enum import StrEnum


class Callback(StrEnum):
    report_modal = "friction_report"
    report_shortcut = "report_friction"  # the message shortcut; manifest.yml names it too


class Block(StrEnum):
    text = "text"
    categories = "categories"
    severity = "severity"
    time_lost = "time_lost"
    kind = "kind"
    link = "link"


class Action(StrEnum):
    text = "text_input"
    categories = "categories_select"
    severity = "severity_select"
    time_lost = "time_lost_select"
    kind = "kind_radio"
    link = "link_input"
    add_details = "add_details"
    open_report = "open_report_modal"
