"""Logging: JSON lines when not on a terminal (python-json-logger), plain text on one; every record
carries the reference of the data point it concerns when there is one; secrets never get out."""

import logging
import re
import sys
from collections.abc import Sequence
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

# The data point the current task is working on; handlers set it, every record in the task gets it.
current_ref: ContextVar[str | None] = ContextVar("current_ref", default=None)

# Slack tokens by shape, whoever's they are; configured secrets by value.
_TOKEN = re.compile(r"\bx(?:ox[abposr]|app)-[A-Za-z0-9-]{6,}")


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "ref"):
            record.ref = current_ref.get()
        return True


class RedactFilter(logging.Filter):
    """Scrubs Slack tokens and the configured secrets from the message and its arguments."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        text = _TOKEN.sub("[redacted]", text)
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:  # a traceback can quote anything: scrub it and keep it in the message
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, None
        record.msg, record.args = self.scrub(message), None
        return True


def configure(*, secrets: Sequence[str] = (), json: bool | None = None, level: int = logging.INFO) -> None:
    """Route all logging through one handler on stderr, redacted, JSON unless stderr is a terminal.
    JSON records carry the process id: ``serve --workers N`` runs N processes logging to one stream."""
    use_json = (not sys.stderr.isatty()) if json is None else json
    handler = logging.StreamHandler(sys.stderr)
    if use_json:
        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(ref)s %(process)d",
                                           rename_fields={"levelname": "level", "asctime": "time"}))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactFilter(list(secrets)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # A library's warning (warnings.warn: SQLAlchemy's SAWarning, a DeprecationWarning) goes through
    # the same handler: one JSON record, redacted, rather than two raw lines among the JSON ones.
    logging.captureWarnings(True)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
