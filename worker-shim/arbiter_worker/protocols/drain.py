"""The graceful drain of HTTP/1.1 connections: zero failed requests when a worker is replaced.

uvicorn's shutdown closes every idle keep-alive connection at once. A client that picked that
connection from its pool a moment earlier has its request in flight; it arrives at a closed socket,
gets a reset, and the request fails (most clients retry only idempotent requests, httpx and wrk
never). A draining connection here instead:

1. answers its in-flight request, then closes after that response (``Connection: close``);
2. answers the *next* request that arrives with ``Connection: close`` and then closes, so the client
   learns from the response itself not to reuse the connection, with no race at all;
3. is closed by us only if it stayed idle for ``idle_grace`` seconds since the drain began and the
   kernel holds no unread bytes for it (FIONREAD). Right after a response a busy client is about to
   send its next request (wrk does so within microseconds), so closing then would almost surely race;
   after a quiet period a request is no likelier than at any random moment, and a request that did
   arrive meanwhile is still read and answered. What remains is the race inherent to HTTP/1.1
   keep-alive: a request sent in the same instant the server closes (the same as at every
   keep-alive timeout), which clients handle by retrying on a reused connection.

Pipelined requests (httptools): only the last queued request gets ``Connection: close``, so the ones
before it are all answered.
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import termios
from typing import Any, Protocol

from arbiter_worker.protocols.close_codes import GOING_AWAY

CLOSE_HEADER = (b"connection", b"close")


class Cycle(Protocol):
    """The parts of uvicorn's RequestResponseCycle (httptools and h11 alike) the drain touches."""

    keep_alive: bool
    response_started: bool
    response_complete: bool
    default_headers: list[tuple[bytes, bytes]]


def close_after_response(cycle: Any) -> None:
    """Make `cycle` answer with ``Connection: close`` and close the connection after its response.

    The header is added through the cycle's own default headers because both uvicorn
    implementations honour it when they write the response head (h11 does not add it for
    keep_alive=False alone). A response already started cannot get the header any more; it still
    closes right after its last byte.
    """
    typed: Cycle = cycle
    typed.keep_alive = False
    if not typed.response_started and CLOSE_HEADER not in typed.default_headers:
        typed.default_headers = [*typed.default_headers, CLOSE_HEADER]


def unread_bytes(transport: asyncio.BaseTransport) -> int:
    """Bytes the kernel holds for this connection that the event loop has not read yet."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    count = array.array("i", [0])
    try:
        fcntl.ioctl(sock.fileno(), termios.FIONREAD, count, True)
    except OSError:
        return 0
    return count[0]


class HttpDrainMixin(asyncio.Protocol):
    """Drain behaviour shared by the httptools and h11 subclasses (listed first in their bases).

    Relies on uvicorn's per-connection state: ``transport``, ``loop``, ``cycle`` (None until the
    first request) and ``timeout_keep_alive_task``, which uvicorn arms exactly when a response
    completed and no byte has arrived since, i.e. while the connection waits for a next request.
    """

    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    cycle: Any
    timeout_keep_alive_task: asyncio.TimerHandle | None

    _draining = False
    shedding = False
    """Told to close after its next response (rebalancing); counted so it is not chosen twice."""
    _received_any = False
    _idle_close_timer: asyncio.TimerHandle | None = None

    # Hooks for the concrete protocol.
    def _newest_cycle(self) -> Any:
        """The request that will be answered last on this connection, or None."""
        raise NotImplementedError

    def _close_idle(self) -> None:
        raise NotImplementedError

    def _waiting_for_request(self) -> bool:
        if self.timeout_keep_alive_task is not None:
            return True
        return self.cycle is None and not self._received_any

    def data_received(self, data: bytes) -> None:
        self._received_any = True
        super().data_received(data)
        if self._draining:
            self._cancel_idle_close()
            self._mark_newest_cycle()
        elif self.shedding:
            self._mark_unstarted_cycle()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_idle_close()
        super().connection_lost(exc)

    def begin_drain(self, idle_grace: float, close_code: int = GOING_AWAY) -> None:
        """Start draining this connection; safe to call again. close_code is for WebSockets: unused here."""
        if self._draining or self.transport is None or self.transport.is_closing():
            return
        self._draining = True
        self._mark_newest_cycle()
        if self._waiting_for_request():
            self._idle_close_timer = self.loop.call_later(idle_grace, self._close_if_still_idle)

    def close_after_next_response(self) -> bool:
        """Rebalancing (accept.py): the next response on this connection that has not started (the
        one being prepared, else the answer to the next request) says ``Connection: close`` and is the
        last, so the client reconnects, perhaps to another worker, without racing a close. False when
        the connection is already closing or draining or shedding."""
        if self._draining or self.shedding or self.transport is None or self.transport.is_closing():
            return False
        self.shedding = True
        self._mark_unstarted_cycle()
        return True

    def _mark_unstarted_cycle(self) -> None:
        cycle = self._newest_cycle()
        if cycle is not None and not cycle.response_complete and not cycle.response_started:
            close_after_response(cycle)

    def _mark_newest_cycle(self) -> None:
        cycle = self._newest_cycle()
        if cycle is not None and not cycle.response_complete:
            close_after_response(cycle)

    def _close_if_still_idle(self) -> None:
        self._idle_close_timer = None
        if self.transport.is_closing() or not self._waiting_for_request():
            return
        if unread_bytes(self.transport) > 0:
            # A request is arriving: data_received will run, mark it, and answer it with close.
            return
        self._close_idle()

    def _cancel_idle_close(self) -> None:
        if self._idle_close_timer is not None:
            self._idle_close_timer.cancel()
            self._idle_close_timer = None
