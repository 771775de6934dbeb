"""Fails at import time, as an app with a typo or a missing setting does."""

raise RuntimeError("boom at import: crash_on_import")
