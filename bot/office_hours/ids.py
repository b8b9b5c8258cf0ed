"""Office hours' block ids: the agenda's sections (new reports, still open, covered, rolling over)."""

NEW_BLOCK, OPEN_BLOCK, COVERED_BLOCK, ROLLING_BLOCK = "oh_new", "oh_open", "oh_covered", "oh_rolling"
