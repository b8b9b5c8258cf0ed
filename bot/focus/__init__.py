"""The quarter's focus: picking items, publishing, the report and the dashboard section."""
