"""The help channel's Slack ids: the Resolve button and the reply's block."""

RESOLVE_ACTION = "help_channel_resolve"  # the Resolve button; its value is the data point's id
REPLY_BLOCK = "help_channel"
