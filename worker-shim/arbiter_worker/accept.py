"""The even accept policy (``ARBITER_BALANCE=even``): workers share a listener's queue fairly.

uvicorn hands each listener to the event loop's own server, which accepts every queued connection
the moment it wakes up. All workers watch the same queue, so whichever gets the CPU first takes a
whole burst: keep-alive connections opened at once can land on one or two of four workers and
stay there (docs/benchmarks/balance.md has the measurements). Here the shim accepts instead, and
before each accept it looks at the board (board.py): while this worker holds more than its share of
the connections of the workers that can accept right now (their count divided among them, plus one),
it stops watching the listener and lets the others take the queue. It watches again the moment one
of its own connections closes and brings it back within its share (with short-lived connections,
``Connection: close`` from nginx's default upstream, that is most of the time: waiting for the next
look instead left the worker idle next to a full queue: see docs/benchmarks/), and it looks again
every HOLD_POLL_SECONDS: once the queue is empty, or it is back within its share, it watches again;
if the queue is still not empty after HOLD_MAX_SECONDS (the others are slow to be scheduled), it
takes one connection anyway, so holding off can delay a connection but never strand it. A worker whose loop
is blocked stops ticking and drops out of the share, so the others do not wait for it.

Long-lived connections are shared too: a worker holding clearly more than its share (after a
scale-up, or a replacement that came up after its peers took the connections) answers the next
request on its excess connections with ``Connection: close`` (``rebalance``, each tick), and the
clients' reconnections go to the workers under their share. The close always comes with a response
the client asked for, so no client ever races it.

A wake-up accepts at most ACCEPTS_PER_WAKEUP connections, so one burst cannot hold the loop for
long. Each accepted socket becomes a transport through ``loop.connect_accepted_socket`` (asyncio and
uvloop alike) with uvicorn's own protocol, exactly what ``create_server`` would have built.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
from collections.abc import Callable, Collection

from arbiter_worker.board import Board
from arbiter_worker.logs import SHIM_LOGGER

logger = logging.getLogger(SHIM_LOGGER)

ACCEPTS_PER_WAKEUP = 16
HOLD_POLL_SECONDS = 0.002
HOLD_MAX_SECONDS = 0.02
SHARE_SLACK = 1
"""Connections a worker may hold above its exact share before it holds off: without it, two
workers one connection apart would take turns holding off on every accept."""
REBALANCE_GAP = 3
"""Rebalancing: a worker more than a quarter (at least one) above its share sheds down to its share
plus SHARE_SLACK; one just above its share sheds one connection per tick while another worker holds
this many fewer. Accepting stops at share + SHARE_SLACK, shedding starts above it, so the two never
undo each other."""
SETTLE_SECONDS = 1.0
"""Longest wait at a stop for accepted connections to become transports (a loop iteration or two)."""
RESOURCE_RETRY_SECONDS = 1.0
"""Out of fds or memory: stop accepting this long instead of spinning (asyncio does the same)."""
TCP_INFO_UNACKED = 24
"""Byte offset of tcpi_unacked in struct tcp_info: for a listener, the connections waiting."""


def queued_connections(sock: socket.socket) -> int | None:
    """Connections waiting in a TCP listener's accept queue; None when the kernel does not say (AF_UNIX)."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_UNACKED + 8)
    except OSError:
        return None
    return int(struct.unpack_from("I", info, TCP_INFO_UNACKED)[0])


class Acceptor:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sockets: list[socket.socket],
        protocol_factory: Callable[[], asyncio.Protocol],
        board: Board,
        connections: Callable[[], int],
    ) -> None:
        self._loop = loop
        self._sockets = sockets
        self._factory = protocol_factory
        self._board = board
        self._connections = connections
        self.accepting = 0
        """Accepted, protocol not made yet: already this worker's, not yet in the connection set."""
        self._serving: set[asyncio.Task[None]] = set()
        """The tasks making those protocols (held here: the loop keeps only weak references)."""
        self._held: dict[int, asyncio.TimerHandle] = {}
        self._holding: dict[int, socket.socket] = {}
        """Listeners held off for being over the share (not paused for lack of fds): watched again
        as soon as this worker is back within its share."""
        self._running = False

    def held_connections(self) -> int:
        """Open connections plus those accepted whose protocol does not exist yet."""
        return self._connections() + self.accepting

    def start(self) -> None:
        self._running = True
        for sock in self._sockets:
            sock.setblocking(False)
            self._loop.add_reader(sock.fileno(), self._on_acceptable, sock)
        self._board.set_serving(True)

    def stop(self) -> None:
        """Stop accepting (the drain); the sockets stay open for the caller to close."""
        self._running = False
        self._board.set_serving(False)
        for handle in self._held.values():
            handle.cancel()
        for sock in self._sockets:
            if sock.fileno() >= 0 and sock.fileno() not in self._held:
                self._loop.remove_reader(sock.fileno())
        self._held.clear()
        self._holding.clear()

    def connections_changed(self) -> None:
        """One of this worker's connections opened or closed: a listener held off for being over the
        share is watched again at once when the worker is back within it."""
        if not self._holding or not self._running or self.over_share():
            return
        for fd, sock in list(self._holding.items()):
            self._holding.pop(fd)
            handle = self._held.pop(fd, None)
            if handle is not None:
                handle.cancel()
            self._loop.add_reader(fd, self._on_acceptable, sock)

    def over_share(self) -> bool:
        mine = self.held_connections()
        workers, connections, _fewest = self._board.serving_connections()
        if workers <= 1:
            return False
        share = -(-(connections + 1) // workers)  # ceil: the connection about to be accepted counts
        return mine + 1 > share + SHARE_SLACK

    def rebalance(self, connections: Collection[object]) -> int:
        """Shed connections above this worker's share (see the module's docstring); returns how many
        were told to close after their current response."""
        mine = self.held_connections()
        workers, total, fewest = self._board.serving_connections()
        if workers <= 1 or fewest is None or not self._running:
            return 0
        share = -(-total // workers)
        if mine > share + max(1, share // 4):
            excess = mine - share - SHARE_SLACK  # well over: back to its share at once
        elif mine > share and mine - fewest >= REBALANCE_GAP:
            excess = 1  # a little over while a peer is far under: one at a time, so they converge
        else:
            return 0
        excess -= sum(1 for c in connections if getattr(c, "shedding", False))
        shed = 0
        for connection in connections:
            if shed >= excess:
                break
            close = getattr(connection, "close_after_next_response", None)
            if close is not None and close():
                shed += 1
        return shed

    def _on_acceptable(self, sock: socket.socket) -> None:
        for _ in range(ACCEPTS_PER_WAKEUP):
            if self.over_share():
                self._hold(sock)
                return
            if not self._accept_one(sock):
                return

    def _accept_one(self, sock: socket.socket) -> bool:
        """Accepts one connection; False when there was none (or accepting must pause)."""
        try:
            conn, _address = sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return False
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                logger.error("Cannot accept a connection (%s); pausing accepts for %.0f s", exc, RESOURCE_RETRY_SECONDS)
                self._pause(sock, RESOURCE_RETRY_SECONDS)
                return False
            raise
        conn.setblocking(False)
        self.accepting += 1
        self._board.publish_connections(self.held_connections())
        task = self._loop.create_task(self._serve(conn))
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)
        return True

    async def settle(self, timeout: float = SETTLE_SECONDS) -> None:
        """Wait until every connection accepted so far is uvicorn's (its protocol made, in the
        connection set), so a drain that starts now sees it. Without this, a stop right after a
        wake-up accepted a burst ended the loop before those protocols existed, and their clients,
        whose requests were already sent, got a closed connection (Connection: close load)."""
        if self._serving:
            await asyncio.wait(set(self._serving), timeout=timeout)

    async def _serve(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, conn)
        except OSError:
            conn.close()  # the peer went away before its transport existed
        finally:
            self.accepting -= 1
            self._board.publish_connections(self.held_connections())

    def _pause(self, sock: socket.socket, seconds: float) -> None:
        fd = sock.fileno()
        if fd in self._held:
            return
        self._loop.remove_reader(fd)
        self._held[fd] = self._loop.call_later(seconds, self._watch_again, sock)

    def _watch_again(self, sock: socket.socket) -> None:
        self._held.pop(sock.fileno(), None)
        if self._running:
            self._loop.add_reader(sock.fileno(), self._on_acceptable, sock)

    def _hold(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        if fd in self._held:
            return
        self._loop.remove_reader(fd)
        began = self._loop.time()

        def look_again() -> None:
            del self._held[fd]
            self._holding.pop(fd, None)
            if not self._running:
                return
            if not self.over_share() or queued_connections(sock) == 0:
                self._loop.add_reader(fd, self._on_acceptable, sock)
                return
            if self._loop.time() - began >= HOLD_MAX_SECONDS:
                self._accept_one(sock)  # nobody else took it: serve it rather than let it wait
                if fd not in self._held:
                    self._loop.add_reader(fd, self._on_acceptable, sock)
                return
            self._held[fd] = self._loop.call_later(HOLD_POLL_SECONDS, look_again)
            self._holding[fd] = sock

        self._held[fd] = self._loop.call_later(HOLD_POLL_SECONDS, look_again)
        self._holding[fd] = sock


class EvenBalance:
    """The even policy as WorkerServer sees it: one object for the whole of it, made only with a board
    and ``ARBITER_BALANCE=even``. uvicorn gets no listener (``uvicorn_sockets``); once lifespan
    startup is done the shim's Acceptor takes them (``start``); the connection count it publishes
    includes the connections it accepted whose protocol does not exist yet (``pending``), and a change
    of the count may let it watch a listener again (``connections_changed``); each tick it sheds what
    is above its share (``tick``); the drain stops it and waits for what it accepted (``stop``, ``settle``)."""

    def __init__(self, board: Board) -> None:
        self._board = board
        self._acceptor: Acceptor | None = None

    @staticmethod
    def uvicorn_sockets(sockets: list[socket.socket] | None) -> list[socket.socket]:
        """What uvicorn's startup gets: an empty list, not None (which would make it bind), so it
        builds no server of its own."""
        return []

    def start(
        self,
        loop: asyncio.AbstractEventLoop,
        sockets: list[socket.socket],
        protocol_factory: Callable[[], asyncio.Protocol],
        connections: Callable[[], int],
    ) -> None:
        self._acceptor = Acceptor(loop, sockets, protocol_factory, self._board, connections)
        self._acceptor.start()

    def pending(self) -> int:
        return self._acceptor.accepting if self._acceptor is not None else 0

    def connections_changed(self) -> None:
        if self._acceptor is not None:
            self._acceptor.connections_changed()

    def tick(self, connections: Collection[object]) -> None:
        if self._acceptor is not None:
            self._acceptor.rebalance(connections)

    def stop(self) -> None:
        if self._acceptor is not None:
            self._acceptor.stop()

    async def settle(self) -> None:
        if self._acceptor is not None:
            await self._acceptor.settle()
