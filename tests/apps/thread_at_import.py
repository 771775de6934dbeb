"""Starts a background thread at import: forking such an app would lose the thread, so --preload
must refuse it with the thread's name and the fix."""

import threading
import time

from hello import app  # noqa: F401  (the same endpoints as hello)


def refresh_cache_forever() -> None:
    while True:
        time.sleep(60)


threading.Thread(target=refresh_cache_forever, name="cache-refresher", daemon=True).start()
