"""platform-feedback: a Slack bot that turns developer friction into data points."""
