"""Pulse surveys as plain operations (no Slack imports): ``timing`` (when DMs, reminders and the
close go), ``results`` (what may be shown, scores), ``runs`` (start, queue, remind, close),
``answers`` (buttons, modal, opt-out, filing a comment), ``csat`` (the follow-up after a
resolve) and ``runner`` (audience, resuming and ticking). The names are re-exported here so
callers can write ``from bot import surveys``."""

from bot.surveys.answers import *  # noqa: F401,F403
from bot.surveys.answers import SCORES  # noqa: F401
from bot.surveys.csat import *  # noqa: F401,F403
from bot.surveys.csat import CSAT_PURPOSE  # noqa: F401
from bot.surveys.results import *  # noqa: F401,F403
from bot.surveys.runner import *  # noqa: F401,F403
from bot.surveys.runs import *  # noqa: F401,F403
from bot.surveys.runs import hold_until  # noqa: F401
from bot.surveys.sealing import Keys  # noqa: F401
from bot.surveys.timing import *  # noqa: F401,F403
from bot.surveys.timing import MIN_GAP, UTC, zone  # noqa: F401
