"""The help channel: questions answered, hints of duplicates, reactions that file a report."""
