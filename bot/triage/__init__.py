"""Triage: the card in the triage channel, its actions and modals, and the hosts' queue."""
