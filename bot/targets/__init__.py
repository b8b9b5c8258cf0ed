"""Response targets: business time, clocks, alerts, compliance and their surfaces."""
