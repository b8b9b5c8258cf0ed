"""The runtime: settings and policy, the app factory and HTTP server, CLI, scheduler, outbox sender,
workspaces, host directory, metrics and logs."""
