"""Raises while being imported, as an app with a bad setting does."""

def read_settings() -> None:
    raise RuntimeError("boom at import: shim_import_error")


read_settings()
