"""One module per Slack surface, each with ``register(app, deps)``. Handlers are thin: they parse
the payload, call plain functions in ``bot``/``storage``, and send Block Kit built in ``bot.blocks``."""
