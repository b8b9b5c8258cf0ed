"""Block ids of the progress DMs (``bot.progress.blocks``): the started notice and the daily updates."""

STARTED_BLOCK = "progress_started"
UPDATES_BLOCK = "progress_updates"
