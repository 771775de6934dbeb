"""uvicorn's h11 protocol with the graceful drain of drain.py.

h11 holds pipelined requests back (PAUSED) until the current response is done, so the newest
request is always the current one; a request pipelined behind it during a drain is not answered.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from arbiter_worker.protocols.drain import HttpDrainMixin


class DrainingH11Protocol(HttpDrainMixin, H11Protocol):
    def _newest_cycle(self) -> Any:
        return self.cycle

    def _close_idle(self) -> None:
        self.timeout_keep_alive_handler()
