"""Intake logic with no Slack in it: what a command means, what a modal's answers mean,
and which categories a text suggests."""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import cast

from bot.commands import OTHER_SUBCOMMANDS, OWN_SUBCOMMANDS
from bot.intake.ids import IntakeBlock
from bot.policy import Taxonomy
from storage.models import FrictionKind, Severity

MAX_TEXT = 3000



class CommandKind(StrEnum):
    modal = "modal"
    help = "help"
    mine = "mine"
    report = "report"
    sub = "sub"  # a subcommand another surface handles; ``name`` says which
    unknown = "unknown"


@dataclass(frozen=True)
class ParsedCommand:
    kind: CommandKind
    text: str = ""
    name: str = ""


# Characters that separate words without being whitespace to ``str.split``: zero-width space
# (U+200B, used as a word break in scripts without spaces), word joiner (U+2060), the byte-order
# mark (U+FEFF, pasted from files) and the Mongolian vowel separator (U+180E, whitespace before
# Unicode 6.3). Every Unicode space (U+00A0 from Option-Space on a Mac, U+3000 ideographic space,
# U+2007, U+202F...) is whitespace to ``str.split()`` already.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u2060\ufeff\u180e"), " ")


def first_word(text: str) -> tuple[str, str]:
    """``text``'s first word and the rest (stripped), split at any Unicode whitespace or invisible
    separator: ``resolve\u00a0FB-1 fixed`` is ``("resolve", "FB-1 fixed")``."""
    parts = (text or "").translate(_INVISIBLE).split(None, 1)
    return (parts[0] if parts else "", parts[1].strip() if len(parts) > 1 else "")


def _strip(text: str) -> str:
    while text != (stripped := text.strip().strip("\u200b\u2060\ufeff\u180e")):
        text = stripped
    return text


def looks_like_a_word(token: str) -> bool:
    """One word of Latin letters (``lsit``): a mistyped subcommand more likely than a report. A
    single token in a script written without spaces (Japanese, Chinese, Thai) is a sentence."""
    return token.isascii() and token.isalpha() and len(token) <= 20


def parse_command(text: str) -> ParsedCommand:
    """``/platform-feedback [text]``: no text opens the modal; ``help``/``mine`` and the other
    surfaces' words are subcommands (the first word, however the words are separated); a single
    Latin word that is none of them gets the usage; any other text, in any script, files a report."""
    first, rest = first_word(text)
    if not first:
        return ParsedCommand(CommandKind.modal)
    text = _strip(text)  # a report keeps its words as written, separators included
    word = first.lower()
    if word in OWN_SUBCOMMANDS:
        return ParsedCommand(CommandKind(word), rest)
    if word in OTHER_SUBCOMMANDS:
        return ParsedCommand(CommandKind.sub, rest, name=word)
    if not rest and looks_like_a_word(first):
        return ParsedCommand(CommandKind.unknown, text)
    return ParsedCommand(CommandKind.report, text)


def flatten_state(values: dict) -> dict[str, object]:
    """A view's ``state.values`` as {block_id: value}, whatever the element type."""
    flat: dict[str, object] = {}
    for block_id, actions in (values or {}).items():
        for element in actions.values():
            kind = element.get("type")
            if kind in ("static_select", "radio_buttons"):
                option = element.get("selected_option")
                flat[block_id] = option["value"] if option else None
            elif kind == "multi_static_select":
                flat[block_id] = [o["value"] for o in element.get("selected_options") or []]
            else:
                flat[block_id] = element.get("value")
    return flat


@dataclass(frozen=True)
class ModalAnswers:
    text: str
    categories: tuple[str, ...]
    severity: Severity
    minutes_lost: int | None
    kind: FrictionKind
    link_url: str | None


def read_modal(values: dict, taxonomy: Taxonomy) -> tuple[ModalAnswers | None, dict[str, str]]:
    """The modal's answers, or errors keyed by block id (shown under each field in the modal)."""
    state = flatten_state(values)
    errors: dict[str, str] = {}
    text = str(state.get(IntakeBlock.text) or "").strip()
    if not text:
        errors[IntakeBlock.text] = "Tell us what got in your way."
    elif len(text) > MAX_TEXT:
        errors[IntakeBlock.text] = f"Please keep it under {MAX_TEXT:,} characters (this is {len(text):,})."
    # a multi_static_select's value: the chosen options' values (flatten_state)
    categories = tuple(cast(Iterable[str], state.get(IntakeBlock.categories) or ()))
    unknown = [c for c in categories if not taxonomy.has(c)]
    if unknown:
        errors[IntakeBlock.categories] = f"Unknown area: {', '.join(unknown)[:100]}. Please pick from the list."
    try:
        severity = Severity(str(state.get(IntakeBlock.severity) or Severity.medium))
    except ValueError:
        errors[IntakeBlock.severity] = "Please pick an impact from the list."
        severity = Severity.medium
    minutes_raw = state.get(IntakeBlock.time_lost)
    minutes = int(minutes_raw) if isinstance(minutes_raw, str) and minutes_raw.isdigit() else None
    if minutes_raw is not None and minutes is None:
        errors[IntakeBlock.time_lost] = "Please pick a time from the list."
    try:
        kind = FrictionKind(str(state.get(IntakeBlock.kind) or FrictionKind.feedback))
    except ValueError:
        errors[IntakeBlock.kind] = "Please pick a kind from the list."
        kind = FrictionKind.feedback
    link = (str(state.get(IntakeBlock.link) or "")).strip() or None
    if link and (not re.match(r"^https?://\S+$", link) or len(link) > 3000):
        errors[IntakeBlock.link] = "That doesn't look like a web link (https://…)."
    if errors:
        return None, errors
    return ModalAnswers(text, categories, severity, minutes, kind, link), {}


def suggest_categories(text: str, taxonomy: Taxonomy) -> tuple[str, ...]:
    """Categories whose keywords occur in ``text`` as whole words."""
    lowered = text.lower()
    found = []
    for category in taxonomy.categories:
        if any(re.search(rf"(?<!\w){re.escape(k.lower())}(?!\w)", lowered) for k in category.keywords):
            found.append(category.id)
    return tuple(found)


