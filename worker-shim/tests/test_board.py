"""The board (docs/worker-channel.md, "The board"): what a worker publishes there, and the even
accept policy's view of it. The board is a real memfd laid out as the arbiter lays it out."""

from __future__ import annotations

import asyncio
import mmap
import os
import socket
import struct
import time

import httpx
import pytest

from harness import Worker, tcp_listener, url_of

from arbiter_worker.accept import Acceptor, queued_connections
from arbiter_worker.board import (
    CONNECTIONS, ENTRY_BYTES, IN_FLIGHT, MAGIC, PID, SERVING, TICK_MS, VERSION, WORDS, Board, BoardInvalid,
    monotonic_ms,
)

ENTRIES = 8


def make_board(entries: int = ENTRIES, magic: int = MAGIC) -> tuple[int, memoryview]:
    fd = os.memfd_create("test-board")
    os.ftruncate(fd, entries * ENTRY_BYTES)
    words = memoryview(mmap.mmap(fd, 0)).cast("q")
    words[0], words[1], words[2], words[3], words[4] = magic, VERSION, entries, ENTRY_BYTES, entries
    return fd, words


def entry(words: memoryview, index: int, field: int) -> int:
    return int(words[index * WORDS + field])


def set_peer(words: memoryview, index: int, connections: int, serving: bool = True) -> None:
    words[index * WORDS + PID] = 1
    words[index * WORDS + CONNECTIONS] = connections
    words[index * WORDS + SERVING] = int(serving)
    words[index * WORDS + TICK_MS] = monotonic_ms()


def test_memory_that_is_not_a_board_is_refused() -> None:
    fd, _ = make_board(magic=0)
    with pytest.raises(BoardInvalid, match="is not a version 1 board"):
        Board(fd, 1)
    fd, _ = make_board()
    with pytest.raises(BoardInvalid, match="ARBITER_BOARD_INDEX=8 is not an entry"):
        Board(fd, 8)


def test_share_counts_serving_peers_whose_loop_ticked_recently() -> None:
    fd, words = make_board()
    board = Board(fd, 1)
    board.set_serving(True)
    board.publish_connections(4)
    set_peer(words, 2, 6)
    set_peer(words, 3, 9, serving=False)  # draining: neither counted nor waited for
    set_peer(words, 4, 1)
    words[4 * WORDS + TICK_MS] = monotonic_ms() - 1000  # its loop is blocked
    assert board.serving_connections() == (2, 10, 6)


def test_a_worker_over_its_share_holds_off_and_one_within_it_accepts() -> None:
    fd, words = make_board()
    board = Board(fd, 1)
    held = {"count": 0}
    loop = asyncio.new_event_loop()
    try:
        acceptor = Acceptor(loop, [], lambda: asyncio.Protocol(), board, lambda: held["count"])
        acceptor.start()
        set_peer(words, 2, 5)
        # The share counts the connection about to be accepted: ceil((count + 5 + 1) / 2), and one
        # more is allowed, so against a peer with 5 this worker takes its 8th and holds off after.
        for count, over in ((3, False), (5, False), (7, False), (8, True), (12, True)):
            held["count"] = count
            board.publish_connections(count)
            assert acceptor.over_share() is over, count
    finally:
        loop.close()


def test_a_held_off_listener_is_watched_again_as_soon_as_a_connection_closes() -> None:
    """Short-lived connections: waiting for the next poll left the worker idle next to a full queue."""
    fd, words = make_board()
    board = Board(fd, 1)
    held = {"count": 8}
    listener = tcp_listener()
    client = socket.create_connection(listener.getsockname())  # one connection waiting in the queue
    loop = asyncio.new_event_loop()
    try:
        acceptor = Acceptor(loop, [listener], lambda: asyncio.Protocol(), board, lambda: held["count"])
        acceptor.start()
        set_peer(words, 2, 5)
        board.publish_connections(8)
        acceptor._on_acceptable(listener)  # over its share: holds off, the connection stays queued
        assert acceptor.over_share() and listener.fileno() in acceptor._held
        assert queued_connections(listener) == 1
        held["count"] = 5
        board.publish_connections(5)
        acceptor.connections_changed()
        assert listener.fileno() not in acceptor._held  # watched again, without waiting for a poll
        deadline = time.monotonic() + 5
        while queued_connections(listener) != 0:  # taken by the acceptor, not left for a poll
            assert time.monotonic() < deadline, "the queued connection was not accepted"
            loop.run_until_complete(asyncio.sleep(0.01))
    finally:
        acceptor.stop()
        loop.close()
        client.close()
        listener.close()


def test_a_stop_waits_for_the_connections_already_accepted_to_become_transports() -> None:
    """A wake-up accepts a burst and makes each protocol in a task; a stop right after must not end
    the loop before those exist, or their clients (requests already sent) see a closed connection."""
    fd, _words = make_board()
    board = Board(fd, 1)
    listener = tcp_listener()
    clients = [socket.create_connection(listener.getsockname()) for _ in range(3)]
    made: list[asyncio.BaseTransport] = []

    class Recording(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            made.append(transport)

    loop = asyncio.new_event_loop()
    try:
        acceptor = Acceptor(loop, [listener], Recording, board, lambda: len(made))
        acceptor.start()
        deadline = time.monotonic() + 5
        while queued_connections(listener) != 3:
            assert time.monotonic() < deadline, queued_connections(listener)
            time.sleep(0.01)
        acceptor._on_acceptable(listener)  # accepted; their protocols are made by tasks not run yet
        assert acceptor.accepting == 3 and not made
        acceptor.stop()
        loop.run_until_complete(acceptor.settle())
        assert len(made) == 3 and acceptor.accepting == 0
        for transport in made:
            transport.close()
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
        for client in clients:
            client.close()
        listener.close()


def test_worker_publishes_its_connections_serving_and_ticks() -> None:
    fd, words = make_board()
    listener = tcp_listener()
    worker = Worker("shim_hello:app", [listener], board_fd=fd,
                    env={"ARBITER_BOARD_FD": "5", "ARBITER_BOARD_INDEX": "3", "ARBITER_BALANCE": "even"})
    try:
        worker.wait_for("ready")
        deadline = time.monotonic() + 10
        clients = [httpx.Client(base_url=url_of(listener)) for _ in range(3)]
        for client in clients:
            assert client.get("/").status_code == 200
        while entry(words, 3, CONNECTIONS) != 3:
            assert time.monotonic() < deadline, entry(words, 3, CONNECTIONS)
            time.sleep(0.01)
        assert entry(words, 3, PID) == worker.pid
        assert entry(words, 3, SERVING) == 1
        # Requests in flight are published on the 10 Hz tick: one that ran during the last request
        # still says 1 until the next.
        while entry(words, 3, IN_FLIGHT) != 0:
            assert time.monotonic() < deadline, entry(words, 3, IN_FLIGHT)
            time.sleep(0.01)
        assert monotonic_ms() - entry(words, 3, TICK_MS) < 1000
        for client in clients:
            client.close()
        while entry(words, 3, CONNECTIONS) != 0:
            assert time.monotonic() < deadline, entry(words, 3, CONNECTIONS)
            time.sleep(0.01)
    finally:
        worker.signal(15)
        code, _, err = worker.finish()
    assert code == 0, err
    assert entry(words, 3, SERVING) == 0  # the drain stopped accepting


def test_an_open_websocket_is_a_connection_but_not_a_request_in_flight() -> None:
    """A session waiting for messages is not work: it must not make the worker look busy to the
    autoscaler, while it still counts for the even split of connections."""
    from websockets.sync.client import connect as websocket_connect

    fd, words = make_board()
    listener = tcp_listener()
    worker = Worker("shim_hello:app", [listener], board_fd=fd,
                    env={"ARBITER_BOARD_FD": "5", "ARBITER_BOARD_INDEX": "2", "ARBITER_BALANCE": "even"})
    try:
        worker.wait_for("ready")
        host, port = listener.getsockname()[:2]
        with websocket_connect(f"ws://{host}:{port}/echo", open_timeout=5) as ws:
            ws.send("hi")
            assert ws.recv(timeout=5).endswith(":hi")
            tick = entry(words, 2, TICK_MS)
            deadline = time.monotonic() + 5
            while entry(words, 2, TICK_MS) <= tick + 100:  # two more ticks, both after the session began
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert entry(words, 2, CONNECTIONS) == 1
            assert entry(words, 2, IN_FLIGHT) == 0
    finally:
        worker.signal(15)
        code, _, err = worker.finish()
    assert code == 0, err


def test_a_board_fd_that_is_not_a_board_exits_2() -> None:
    fd = os.memfd_create("not-a-board")
    os.ftruncate(fd, 4096)
    worker = Worker("shim_hello:app", [tcp_listener()], board_fd=fd,
                    env={"ARBITER_BOARD_FD": "5", "ARBITER_BOARD_INDEX": "1"})
    code, _, err = worker.finish()
    assert code == 2
    assert "ARBITER_BOARD_FD=5 is not a version 1 board" in err
