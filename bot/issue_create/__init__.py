"""Create a report's tracker issue from its triage card (issue #28): the modal, the create call
made exactly once, and the link it leaves. See ``service`` for the flow and ``policy`` for the
settings."""
