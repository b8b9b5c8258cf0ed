"""Office hours: the rota of hosts, the session post and its reminders."""
