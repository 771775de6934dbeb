"""uvicorn's httptools protocol with the graceful drain of drain.py."""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from arbiter_worker.protocols.drain import HttpDrainMixin


class DrainingHttpToolsProtocol(HttpDrainMixin, HttpToolsProtocol):
    def _newest_cycle(self) -> Any:
        # Pipelined requests wait in self.pipeline, newest at the left (appendleft).
        if self.pipeline:
            return self.pipeline[0][0]
        return self.cycle

    def _close_idle(self) -> None:
        self.timeout_keep_alive_handler()
