"""Telling reporters how the work on their report goes (issue #28): one "started" DM per issue,
and relayed updates batched to one DM per report a day. See ``service`` and ``jobs``."""
