"""PROTOTYPE: the shim's own accept loop, with experimental policies (BAL_EXPERIMENT)."""

from __future__ import annotations

import asyncio
import errno
import mmap
import os
import select
import socket
import struct
import threading
from collections.abc import Callable

from uvicorn.server import ServerState

ACCEPT_RETRY_SECONDS = 1.0
HOLD_POLL = float(os.environ.get("HOLD_POLL", "0.002"))
HOLD_MAX = float(os.environ.get("HOLD_MAX", "0.05"))


def queue_length(sock: socket.socket) -> int:
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    except OSError:
        return 1
    return int(struct.unpack_from("I", info, 24)[0])


class BoardSet(set):  # type: ignore[type-arg]
    def __init__(self, publish: Callable[[int], None]) -> None:
        super().__init__()
        self._publish = publish

    def add(self, item: object) -> None:
        super().add(item)
        self._publish(len(self))

    def discard(self, item: object) -> None:
        super().discard(item)
        self._publish(len(self))
ENTRY = 64  # bytes per board entry: pid, connections, in_flight, serving


class Board:
    def __init__(self, path: str, index: int) -> None:
        fd = os.open(path, os.O_RDWR)
        self._map = mmap.mmap(fd, 0)
        os.close(fd)
        self._view = memoryview(self._map).cast("q")
        self._index = index
        self._base = index * (ENTRY // 8)
        self._count = len(self._map) // ENTRY

    def publish(self, connections: int, serving: int) -> None:
        v = self._view
        b = self._base
        v[b] = os.getpid()
        v[b + 1] = connections
        v[b + 3] = serving

    def peers(self) -> tuple[int, int]:
        """(serving workers, their connections)."""
        v = self._view
        n = total = 0
        for i in range(self._count):
            b = i * (ENTRY // 8)
            if v[b] and v[b + 3]:
                n += 1
                total += v[b + 1]
        return n, total


class Acceptor:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sockets: list[socket.socket],
        protocol_factory: Callable[[], asyncio.Protocol],
        state: ServerState,
        mode: str,
    ) -> None:
        self._loop = loop
        self._sockets = sockets
        self._factory = protocol_factory
        self._state = state
        self._mode = mode
        self._per_wake = 2048 if mode == "unbounded" else 1
        self._paused: dict[int, asyncio.TimerHandle] = {}
        self._running = False
        self._board: Board | None = None
        self._threads: list[threading.Thread] = []
        self._go: dict[int, threading.Event] = {}
        self._pending = 0
        if mode == "share":
            self._per_wake = 16
            path = os.environ["BAL_BOARD_PATH"]
            self._board = Board(path, int(os.environ.get("ARBITER_WORKER_ID", "1")))
            board = self._board
            state.connections = BoardSet(lambda n: board.publish(n + self._pending, 1))

    def start(self) -> None:
        self._running = True
        for sock in self._sockets:
            sock.setblocking(False)
            if self._mode == "exclusive":
                self._start_exclusive(sock)
            else:
                self._loop.add_reader(sock.fileno(), self._on_acceptable, sock)
        if self._board:
            self._board.publish(0, 1)

    def stop(self) -> None:
        self._running = False
        if self._board:
            self._board.publish(len(self._state.connections), 0)
        for sock in self._sockets:
            if sock.fileno() >= 0:
                self._loop.remove_reader(sock.fileno())
        for handle in self._paused.values():
            handle.cancel()
        self._paused.clear()
        for ev in self._go.values():
            ev.set()

    # exclusive: a thread per listener sleeps in epoll_wait with EPOLLEXCLUSIVE; it wakes the loop
    # and waits until the loop has accepted before it waits again.
    def _start_exclusive(self, sock: socket.socket) -> None:
        ep = select.epoll()
        ep.register(sock.fileno(), select.EPOLLIN | select.EPOLLEXCLUSIVE)
        go = threading.Event()
        self._go[sock.fileno()] = go

        def run() -> None:
            while self._running:
                try:
                    events = ep.poll(1.0)
                except OSError:
                    return
                if not events or not self._running:
                    continue
                go.clear()
                self._loop.call_soon_threadsafe(self._on_acceptable_then_release, sock, go)
                go.wait()

        t = threading.Thread(target=run, name="arbiter-accept", daemon=True)
        self._threads.append(t)
        t.start()

    def _on_acceptable_then_release(self, sock: socket.socket, go: threading.Event) -> None:
        try:
            self._on_acceptable(sock)
        finally:
            go.set()

    def _over_share(self) -> bool:
        assert self._board is not None
        mine = len(self._state.connections) + self._pending
        self._board.publish(mine, 1)
        n, total = self._board.peers()
        if n <= 1:
            return False
        share = -(-(total + 1) // n)
        return mine + 1 > share + 1

    def _on_acceptable(self, sock: socket.socket) -> None:
        for _ in range(self._per_wake):
            if self._board is not None and self._over_share():
                self._hold(sock)
                return
            try:
                conn, _addr = sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._pause(sock, ACCEPT_RETRY_SECONDS)
                    return
                raise
            conn.setblocking(False)
            self._pending += 1
            self._loop.create_task(self._serve(conn))
            if self._board is not None:
                self._board.publish(len(self._state.connections) + self._pending, 1)
        if self._mode == "yield":
            os.sched_yield()

    async def _serve(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, conn)
        except OSError:
            conn.close()
        finally:
            self._pending -= 1
            if self._board is not None:
                self._board.publish(len(self._state.connections) + self._pending, 1)

    def _pause(self, sock: socket.socket, seconds: float) -> None:
        fd = sock.fileno()
        if fd in self._paused:
            return
        self._loop.remove_reader(fd)

        def resume() -> None:
            self._paused.pop(fd, None)
            if self._running:
                self._loop.add_reader(fd, self._on_acceptable, sock)
                # the queue may still hold connections nobody took: accept one now
                self._force(sock)

        self._paused[fd] = self._loop.call_later(seconds, resume)

    def _hold(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        if fd in self._paused:
            return
        self._loop.remove_reader(fd)
        since = self._loop.time()

        def check() -> None:
            self._paused.pop(fd, None)
            if not self._running:
                return
            if not self._over_share() or queue_length(sock) == 0:
                self._loop.add_reader(fd, self._on_acceptable, sock)
                return
            if self._loop.time() - since >= HOLD_MAX:
                self._force(sock)
                self._loop.add_reader(fd, self._on_acceptable, sock)
                return
            self._paused[fd] = self._loop.call_later(HOLD_POLL, check)

        self._paused[fd] = self._loop.call_later(HOLD_POLL, check)

    def _force(self, sock: socket.socket) -> None:
        try:
            conn, _addr = sock.accept()
        except OSError:
            return
        conn.setblocking(False)
        self._loop.create_task(self._serve(conn))
