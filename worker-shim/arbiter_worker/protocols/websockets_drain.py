"""uvicorn's WebSocket protocols (websockets, sans-I/O and legacy) with a drain that says why.

The close code tells the client what is happening (RFC 6455 7.4.1, IANA registry): a worker drained
by a reload, a recycle or a scale-down closes with 1012 (service restart), as uvicorn's own shutdown
does: the service is still there and a reconnect reaches a live worker. A worker drained because the
arbiter stops closes with 1001 (going away). The arbiter says which in a ``drain`` message before
its SIGTERM (docs/worker-channel.md); without one (a TERM from someone else) it is 1001. The steps
are uvicorn's own shutdown() with that code; a handshake still in progress gets uvicorn's 500.
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from arbiter_worker.protocols.close_codes import GOING_AWAY


class DrainingWebSocketsSansIOProtocol(WebSocketsSansIOProtocol):
    _draining = False

    def begin_drain(self, idle_grace: float, close_code: int = GOING_AWAY) -> None:
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
        self.queue.put_nowait({"type": "websocket.disconnect", "code": close_code})
        self.conn.send_close(close_code)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.transport.close()
