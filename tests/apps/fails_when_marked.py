"""Imports fine until the file named by $APP_BREAK_MARKER exists, then fails at import: an app
that was fine at start and is broken by a bad deploy before the reload."""

import os

marker = os.environ.get("APP_BREAK_MARKER", "")
if marker and os.path.exists(marker):
    raise RuntimeError(f"boom at import: {marker} exists (a broken deploy)")

from hello import app  # noqa: E402,F401  (the same endpoints as hello)
