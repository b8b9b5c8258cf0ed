"""The quarter's focus as data: what a subject is, a baseline's measure, what a person sees of an
item and what changed. Plain dataclasses with no queries, read by the operations
(``bot.focus.service``), the report's numbers (``bot.focus.data``) and the Block Kit
(``bot.focus.blocks``) alike, so the builders need nothing from the operations that queue them."""

import hashlib
import json
from dataclasses import dataclass, field

from storage.focus import FocusItem, FocusPeriod
from storage.models import TrackerLink


class FocusError(Exception):
    """The change cannot apply; ``str()`` is what the person is told (nothing was changed)."""


@dataclass(frozen=True)
class Subject:
    kind: str  # "report" | "area"
    value: str  # a point id, or a taxonomy id

    @classmethod
    def parse(cls, text: str) -> "Subject":
        kind, _, value = text.partition(":")
        if kind not in ("report", "area") or not value:
            raise FocusError("Pick a report or an area.")
        return cls(kind, value)

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


@dataclass(frozen=True)
class Pulse:
    nps: float | None = None
    nps_answers: int = 0
    csat: float | None = None
    csat_answers: int = 0
    nps_run: int | None = None  # the runs behind them: the same run on both sides is no change
    csat_run: int | None = None


@dataclass(frozen=True)
class Measure:
    """One item's friction over the insight window ending at ``at``."""

    at: str  # ISO instant
    score: float
    reports_per_week: float
    reporters: int  # distinct people who reported it in the window
    hours_lost_per_week: float
    pulse: Pulse = field(default_factory=Pulse)
    told_fixed: int = 0  # reporters told it was fixed since the period began (the "now" side only)


@dataclass(frozen=True)
class ItemView:
    item: FocusItem
    subject: Subject
    title: str  # the report's text or the area's label (people's text: escape when shown)
    people: int  # everyone who ever reported it
    links: list[TrackerLink]
    fixed: bool  # every linked issue is closed, or the report is resolved
    baseline: Measure
    merged_into: int | None = None  # the report it was merged into after it was picked: it is followed there


@dataclass(frozen=True)
class FocusState:
    period: FocusPeriod | None
    key: str
    items: list[ItemView]

    def fingerprint(self) -> str:
        """Changes when what the announcement shows changes (links, closures, fixes)."""
        shown = [(v.item.subject, v.fixed, v.merged_into, v.people, [(link.key, link.closed, link.closures) for link in v.links])
                 for v in self.items]
        return hashlib.sha256(json.dumps(shown, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ItemReport:
    view: ItemView
    now: Measure


@dataclass(frozen=True)
class FocusReport:
    key: str
    items: list[ItemReport]
    pulse_before: Pulse  # the earliest baseline's
    pulse_after: Pulse
    ended: bool = False  # the period is over: "now" is its end


def pulse_compared(name: str, before: Pulse, after: Pulse) -> dict:
    """One score before and after. ``shown``: both sides had at least the survey's ``min_group``
    answers (otherwise the scores are None and only the counts are given); ``same_run``: no pulse
    closed since the baseline, so there is nothing to compare yet."""
    key = name.lower()
    b, bn, br = getattr(before, key), getattr(before, f"{key}_answers"), getattr(before, f"{key}_run")
    a, an, ar = getattr(after, key), getattr(after, f"{key}_answers"), getattr(after, f"{key}_run")
    shown = b is not None and a is not None
    return {"name": name, "shown": shown, "same_run": shown and br == ar,
            "before": {"score": b if shown else None, "answers": bn},
            "after": {"score": a if shown else None, "answers": an}}


def pulse_words(pulse: dict) -> str:
    """One line per score: ``NPS: 12 (40 answers) → 25 (38 answers)``, or why it is not compared."""
    name, before, after = pulse["name"], pulse["before"], pulse["after"]
    if not pulse["shown"]:
        return f"{name}: not enough answers on both sides to compare ({before['answers']} before, {after['answers']} after)"
    if pulse["same_run"]:
        return f"{name}: no pulse since the baseline ({before['score']:g}, {before['answers']} answers)"
    return f"{name}: {before['score']:g} ({before['answers']} answers) → {after['score']:g} ({after['answers']} answers)"
