"""Pulse surveys: ``timing`` (when DMs, reminders and the close go), ``results`` (what may be
shown, scores), ``runs`` (start, queue, remind, close), ``answers`` (buttons, modal, opt-out, filing
a comment), ``csat`` (the follow-up after a resolve), ``runner`` (audience, resuming and ticking),
``sealing`` (the answers' keys); in Slack: ``listeners``, ``jobs``, ``slack_reads``. Import each
name from the module that defines it."""
