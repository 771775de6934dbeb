"""The WebSocket close codes a drain sends (RFC 6455 7.4.1): no imports, so the server can name them
without importing a WebSocket library that --ws may not use."""

GOING_AWAY = 1001
"""The arbiter stops: the service is going away."""

SERVICE_RESTART = 1012
"""A reload, a recycle or a scale-down: the service stays, a reconnect reaches a live worker."""
