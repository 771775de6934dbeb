"""uvicorn's WebSocket protocols (websockets, sans-I/O and legacy) with a drain that says 1001.

uvicorn's shutdown closes WebSockets with 1012 (service restart). A draining worker is going away
while the service itself stays up behind the other workers, which is close code 1001 (going away):
clients reconnect, and the arbiter's shared listener sends them to a live worker. The steps are
uvicorn's own shutdown() with that code; a handshake still in progress gets uvicorn's 500.
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

GOING_AWAY = 1001


class DrainingWebSocketsSansIOProtocol(WebSocketsSansIOProtocol):
    _draining = False

    def begin_drain(self, idle_grace: float) -> None:
        if self._draining:
            return
        self._draining = True
        # Keep-alive pings (and stop_keepalive) came with uvicorn 0.44; before, there is none to stop.
        stop_keepalive = getattr(self, "stop_keepalive", None)
        if stop_keepalive is not None:
            stop_keepalive()
        if self.close_sent or not self.handshake_complete:
            self.shutdown()
            return
        self.queue.put_nowait({"type": "websocket.disconnect", "code": GOING_AWAY})
        self.conn.send_close(GOING_AWAY)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.transport.close()
