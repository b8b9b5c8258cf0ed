"""Filing a report: the report modal's ``private_metadata`` (its block and action ids are shared, in
``bot.ids``)."""

from bot.ids import Metadata
from storage.models import Source


class ReportMetadata(Metadata):
    """The report modal's: where the report comes from, and the report it adds details to."""

    source: Source = Source.modal
    channel_id: str | None = None
    message_ts: str | None = None
    point_id: int | None = None  # set when the modal adds details to an existing report
