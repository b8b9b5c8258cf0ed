"""Friction insight: scores, ``top`` and the weekly digest."""
