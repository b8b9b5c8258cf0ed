"""The ``/platform-feedback`` subcommands, one registry (issues #24, #25): the words the command
answers, what follows each, what it does and who may use it. Parsing (``bot.intake.service``), the
help text (``bot.intake.blocks.usage_text``) and the start-up check that every listed word has a
listener and every listener a word (``check_handled``, from the app's ``deps.commands``) all read it.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Subcommand:
    """One ``/platform-feedback`` subcommand: its word, what follows it, what it does and who may
    use it ("anyone" or "hosts"). ``SUBCOMMANDS`` is the one list: parsing, the help text and the
    start-up check that every listed word has a handler (``check_handled``) all read it."""

    name: str
    args: str
    does: str
    who: str = "anyone"


SUBCOMMANDS: tuple[Subcommand, ...] = (
    Subcommand("help", "", "shows this."),
    Subcommand("mine", "", "lists your reports and their status."),
    Subcommand("top", "[days]", "shows the top friction points and how the loop is doing."),
    Subcommand("changelog", "[weeks]", "what the platform team fixed lately."),
    Subcommand("surveys", "[off|on]", "lists the surveys; `off` / `on` stops or restarts your survey DMs."),
    Subcommand("queue", "", "the open queue.", "hosts"),
    Subcommand("link", "FB-12 <issue URL>", "links a report to its tracker issue.", "hosts"),
    Subcommand("issue", "FB-12", "creates the report's tracker issue (a form, prefilled) and links it.", "hosts"),
    Subcommand("update", "FB-12 <text>", "relays an update to the report's reporters (one DM a day at most).", "hosts"),
    Subcommand("resolve", "FB-12 [what was done]", "resolves a report and tells its reporters.", "hosts"),
    Subcommand("ask", "FB-12 <question>", "asks the reporter a question (their answer comes back to the card).", "hosts"),
    Subcommand("focus", "[publish|report]", "the quarter's focus and its candidates.", "hosts"),
    Subcommand("survey", "send|results NAME", "starts a pulse survey or shows its latest results.", "hosts"),
)

# Words the command reserves for itself; a single word that is none of these is a typo, not a report.
OWN_SUBCOMMANDS = {"help", "mine"}
OTHER_SUBCOMMANDS = {c.name for c in SUBCOMMANDS} - OWN_SUBCOMMANDS  # handled by the other surfaces


def check_handled(handled: set[str]) -> None:
    """Raise ``RuntimeError`` naming the difference when the words with a handler (``handled``,
    the app's ``deps.commands`` keys) are not exactly ``OTHER_SUBCOMMANDS``: a subcommand missing
    from the help, or one the help lists that nothing answers."""
    if handled != OTHER_SUBCOMMANDS:
        raise RuntimeError(f"subcommands without a handler: {sorted(OTHER_SUBCOMMANDS - handled)}; "
                           f"handled but not in SUBCOMMANDS: {sorted(handled - OTHER_SUBCOMMANDS)}")
