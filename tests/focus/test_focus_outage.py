"""A focus change saved while the picker's redraw meets an outage says what was done, never
"couldn't save" (the shared outage answer would have said so: untrue, the change was kept)."""

from types import SimpleNamespace

from bot.focus import service as focus
from bot.focus.listeners import _change
from bot.policy import Focus, Policy
from storage.database import DatabaseUnavailable

LEAD = "U0LEAD0001"


class SavesThenGoes:
    """A database that takes the change and is gone for the redraw's read."""

    def __init__(self):
        self.ran = []

    async def run(self, fn, **kwargs):
        self.ran.append(fn)
        if len(self.ran) > 1:
            raise DatabaseUnavailable("connection reset")


class Said:
    def __init__(self):
        self.texts = []

    async def __call__(self, **kwargs):
        self.texts.append(kwargs.get("text", ""))


async def test_a_saved_pick_is_told_as_done_when_only_the_redraw_fails():
    deps = SimpleNamespace(policy=Policy(focus=Focus(leads=[LEAD])), db=SavesThenGoes())
    respond = Said()
    await _change(deps, LEAD, respond, focus.pick, "Picked report 12.", actor=LEAD, subject=focus.Subject("report", "12"))
    assert deps.db.ran[0] is focus.pick
    assert respond.texts == ["Picked report 12. The picker could not be redrawn just now: `/platform-feedback focus` shows it."]
