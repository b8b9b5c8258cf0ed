"""Retention: closed reports purged after the configured number of days."""
