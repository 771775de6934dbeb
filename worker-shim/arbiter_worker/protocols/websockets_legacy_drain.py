"""uvicorn's legacy ``websockets`` protocol with a drain that says why: 1012 or 1001 (see websockets_drain.py).

Kept apart because importing uvicorn's legacy implementation emits a deprecation warning.
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_impl import WebSocketProtocol

from arbiter_worker.protocols.close_codes import GOING_AWAY


class DrainingWebSocketProtocol(WebSocketProtocol):
    _draining = False

    def begin_drain(self, idle_grace: float, close_code: int = GOING_AWAY) -> None:
        if self._draining:
            return
        self._draining = True
        if not self.handshake_completed_event.is_set():
            self.shutdown()
            return
        self.ws_server.closing = True
        self.fail_connection(close_code)
        self.transport.close()
