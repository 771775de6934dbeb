"""A worker's graceful stop: what WorkerServer.shutdown does instead of uvicorn's.

uvicorn's shutdown closes idle keep-alive connections at once; here every connection drains
(protocols/drain.py) within --graceful-timeout counted from the SIGTERM, and lifespan shutdown
gets a reserve at the end of that budget. The steps, in order:

1. stop accepting: only this worker's copies of the listeners close, after the connections still
   queued on them were taken and handed to uvicorn (the last worker to close a listener would
   make the kernel reset whatever is queued on it);
2. drain: every connection is told to drain once, until none is left or the drain budget is spent;
3. what is left is closed and its requests cancelled;
4. lifespan shutdown, bounded by what is left of the budget (and never less than a minimum).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable

import uvicorn

from arbiter_worker.accept import EvenBalance
from arbiter_worker.logs import SHIM_LOGGER
from arbiter_worker.protocols.close_codes import GOING_AWAY, SERVICE_RESTART
from arbiter_worker.sockets import accept_queued

logger = logging.getLogger(SHIM_LOGGER)

DRAIN_POLL_SECONDS = 0.05
IDLE_GRACE_SECONDS = 0.5
"""How long an idle keep-alive connection stays open once the drain began (see protocols/drain.py)."""
LIFESPAN_SHUTDOWN_SHARE = 0.2
LIFESPAN_SHUTDOWN_MAX_RESERVE = 5.0
LIFESPAN_SHUTDOWN_MIN_SECONDS = 0.5
"""Lifespan shutdown always gets this long, even past the budget: well inside the arbiter's kill margin."""
CANCELLED_TASKS_WAIT = 1.0


class Drain:
    def __init__(
        self,
        server: uvicorn.Server,
        graceful_timeout: float,
        balance: EvenBalance | None,
        protocol_factory: Callable[[], Callable[[], asyncio.Protocol]],
    ) -> None:
        self._server = server
        self._graceful_timeout = graceful_timeout
        self._balance = balance
        self._protocol_factory = protocol_factory
        self._told_to_drain: set[object] = set()
        self._websocket_close_code = GOING_AWAY
        """1012 once the arbiter said the drain is a restart (reload, recycle, scale-down), else 1001."""
        self._signalled_at: float | None = None
        """time.monotonic() when SIGTERM arrived: the stop budget counts from there (docs/worker-channel.md)."""

    def signalled(self) -> None:
        """SIGTERM arrived (the first one counts)."""
        if self._signalled_at is None:
            self._signalled_at = time.monotonic()

    def announced(self, restart: bool) -> None:
        """The arbiter's ``drain`` message: a restart closes WebSockets with 1012, else 1001."""
        self._websocket_close_code = SERVICE_RESTART if restart else GOING_AWAY

    async def run(self, sockets: list[socket.socket] | None) -> None:
        # The budget counts from the signal, not from here (uvicorn notices should_exit on its next
        # tick): the arbiter's SIGKILL comes --graceful-timeout plus a margin after it sent SIGTERM,
        # so everything below must end by stop_deadline (docs/worker-channel.md, "Stop deadlines").
        began = self._signalled_at if self._signalled_at is not None else time.monotonic()
        stop_deadline = began + self._graceful_timeout
        reserve = min(LIFESPAN_SHUTDOWN_MAX_RESERVE, self._graceful_timeout * LIFESPAN_SHUTDOWN_SHARE)
        await self._stop_accepting(sockets or [])
        if not self._server.force_exit:
            await self._drain_connections(stop_deadline - reserve)
        await self._close_the_rest(stop_deadline)
        remaining = max(LIFESPAN_SHUTDOWN_MIN_SECONDS, stop_deadline - time.monotonic())
        try:
            await asyncio.wait_for(self._server.lifespan.shutdown(), timeout=remaining)
        except asyncio.TimeoutError:
            logger.error("Lifespan shutdown did not finish within %.1fs", remaining)

    async def _stop_accepting(self, sockets: list[socket.socket]) -> None:
        # Only our copies close: the arbiter and the other workers may keep theirs. At the end of a
        # graceful stop the arbiter has closed its copies first, so the last worker to close a
        # listener would make the kernel reset whatever is still queued on it: take the queued
        # connections first and serve them like any other (no await in between, so nothing can be
        # queued after the sweep but before the close, except in the kernel's own instant).
        force_exit = self._server.force_exit
        if self._balance is not None:
            self._balance.stop()
        queued = [] if force_exit else accept_queued(sockets)
        for server in self._server.servers:
            server.close()
        for sock in sockets:
            sock.close()
        await self._serve_accepted(queued)
        if self._balance is not None and not self._server.force_exit:
            await self._balance.settle()

    async def _serve_accepted(self, connections: list[socket.socket]) -> None:
        """Hand connections accepted by the stop's sweep to uvicorn, exactly as its server would."""
        if not connections:
            return
        loop = asyncio.get_running_loop()
        create_protocol = self._protocol_factory()
        logger.info("Serving %d connection(s) still queued on the listeners before closing them", len(connections))
        for connection in connections:
            try:
                await loop.connect_accepted_socket(create_protocol, connection)
            except OSError:
                connection.close()

    async def _drain_connections(self, drain_deadline: float) -> None:
        state = self._server.server_state
        logger.info(
            "Draining %d connection(s), %d request(s) in flight (up to %.1fs)",
            len(state.connections), len(state.tasks), max(0.0, drain_deadline - time.monotonic()),
        )
        while (state.connections or state.tasks) and not self._server.force_exit and time.monotonic() < drain_deadline:
            for connection in list(state.connections):
                self._drain_connection(connection)
            await asyncio.sleep(DRAIN_POLL_SECONDS)

    def _drain_connection(self, connection: object) -> None:
        if connection in self._told_to_drain:
            return
        self._told_to_drain.add(connection)
        begin_drain = getattr(connection, "begin_drain", None)
        if begin_drain is not None:
            begin_drain(IDLE_GRACE_SECONDS, self._websocket_close_code)
        else:
            # A protocol without a drain (wsproto, a custom class): uvicorn's own shutdown.
            getattr(connection, "shutdown")()

    async def _close_the_rest(self, stop_deadline: float) -> None:
        state = self._server.server_state
        if not (state.connections or state.tasks):
            return
        if not self._server.force_exit:
            logger.warning(
                "Drain budget spent: closing %d connection(s), cancelling %d request(s)",
                len(state.connections), len(state.tasks),
            )
        for connection in list(state.connections):
            connection.shutdown()
        tasks = list(state.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=max(0.01, min(CANCELLED_TASKS_WAIT, stop_deadline - time.monotonic())))
