"""Block Kit, built by pure functions that return dicts. No Slack calls in here."""
