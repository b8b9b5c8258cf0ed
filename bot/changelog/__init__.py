"""The weekly "you said, we did" changelog: its operations, Block Kit, listeners and job."""
