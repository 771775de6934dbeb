"""Leaves a native thread at import that no fork handler stops or restarts (faulthandler's watchdog,
which Python starts in C, outside the threading module): --preload warns with the count and forks."""

import faulthandler

from hello import app  # noqa: F401  (the same endpoints as hello)

faulthandler.dump_traceback_later(3600, exit=False)
