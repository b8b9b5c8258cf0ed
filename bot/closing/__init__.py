"""Closing the loop: tracker webhooks, polling and deliveries applied to reports, and the reporters told."""
