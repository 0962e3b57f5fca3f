"""UI pages: each has PATH, ``page(user, *parts) -> (content, live subscriptions)`` and ``register``."""
