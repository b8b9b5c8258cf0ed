"""The Slack ids several features share (intake, triage, targets, closing): one
StrEnum per kind, so a listener and its view cannot drift apart. A feature's own ids are in its
``bot/<feature>/ids.py``; ``tests/test_ids.py`` checks that no id of a kind is defined twice."""

from typing import Self

from pydantic import BaseModel, ValidationError


class Metadata(BaseModel):
    """A modal's ``private_metadata``: a small model written as JSON (fields that are None left
    out) by the builder and read back by the view's listener, the same way for every modal. Slack
    keeps it with the view and gives it back unchanged with the submission (at most 3,000
    characters, https://api.slack.com/reference/surfaces/views); the client can still forge it, so
    a listener checks again what it names. Each modal's metadata is a subclass."""

    def dump(self) -> str:
        return self.model_dump_json(exclude_none=True)

    @classmethod
    def load(cls, raw: str | None) -> Self:
        """The metadata in ``raw``; pydantic's ``ValidationError`` if it is not this model's. Empty:
        the model's defaults. A bare number is the one field of a one-field model: what a modal
        opened before the metadata was a model carried (``str(id)``), so one submitted across an
        upgrade still reads."""
        if not raw:
            return cls()
        if raw.isdigit() and len(cls.model_fields) == 1:
            return cls(**{next(iter(cls.model_fields)): int(raw)})
        return cls.model_validate_json(raw)

    @classmethod
    def parse(cls, raw: str | None) -> Self | None:
        """``load``, or None when ``raw`` is not this model's."""
        try:
            return cls.load(raw)
        except ValidationError:
            return None


class PointMetadata(Metadata):
    """A modal about one report (the triage modals, a target's question and answer)."""

    point_id: int
