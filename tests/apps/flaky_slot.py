"""Fails at import in the worker whose ARBITER_WORKER_ID is $APP_FAIL_SLOT, once the file named by
$APP_BREAK_MARKER exists: one slot that crash-loops while the others serve."""

import os

marker = os.environ.get("APP_BREAK_MARKER", "")
if os.environ.get("ARBITER_WORKER_ID") == os.environ.get("APP_FAIL_SLOT") and marker and os.path.exists(marker):
    raise RuntimeError(f"boom at import in worker {os.environ.get('ARBITER_WORKER_ID')}")

from hello import app  # noqa: E402,F401
