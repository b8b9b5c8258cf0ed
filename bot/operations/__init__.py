"""Operations: filing a report, triage, closing the loop, surveys, office hours, the help channel,
insight. Plain functions with no Slack imports, called alike by handlers, jobs, the CLI and tests."""
