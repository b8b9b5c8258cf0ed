"""Persistence: SQLModel tables, the database handle, and query functions.

Nothing in here imports Slack. Every query function takes a keyword-only ``session``.
"""
