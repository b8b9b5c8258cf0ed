"""Filing a report: the report modal's action, block and callback ids, the message shortcut's
callback, the Add details button, and the modal's ``private_metadata`` (the ids several features
share are in ``bot.ids``; ``tests/test_ids.py`` checks none is defined twice)."""

from enum import StrEnum

from bot.ids import Metadata
from storage.models import Source


class IntakeCallback(StrEnum):
    report_modal = "friction_report"
    report_shortcut = "report_friction"  # the message shortcut; manifest.yml names it too


class IntakeBlock(StrEnum):
    """The report modal's inputs (``service.read_modal`` reads them, errors are shown under them)."""

    text = "text"
    categories = "categories"
    severity = "severity"
    time_lost = "time_lost"
    kind = "kind"
    link = "link"


class IntakeAction(StrEnum):
    text = "text_input"
    categories = "categories_select"
    severity = "severity_select"
    time_lost = "time_lost_select"
    kind = "kind_radio"
    link = "link_input"
    add_details = "add_details"  # the button under a filed report's confirmation


class ReportMetadata(Metadata):
    """The report modal's: where the report comes from, and the report it adds details to."""

    source: Source = Source.modal
    channel_id: str | None = None
    message_ts: str | None = None
    point_id: int | None = None  # set when the modal adds details to an existing report
