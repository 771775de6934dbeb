"""The graceful drain on SIGTERM: no request may fail because a worker is being replaced."""

from __future__ import annotations

import concurrent.futures
import fcntl
import shutil
import signal
import socket
import struct
import termios
import time

import httpx
import pytest
from websockets.sync.client import connect as websocket_connect

from drain_load import measure_drain
from harness import Worker, tcp_listener, url_of

REQUEST = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"


def read_response(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """The head of the next whole response (Content-Length framed) on `sock`; reads no further."""
    sock.settimeout(timeout)
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        assert byte, f"connection closed after {head!r}"
        head += byte
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        assert chunk, "connection closed mid-body"
        body += chunk
    return head


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except (TimeoutError, socket.timeout):
        return False
    except ConnectionResetError:
        return True


def ready_worker(*args: str) -> tuple[Worker, socket.socket]:
    listener = tcp_listener()
    worker = Worker("shim_hello:app", [listener], args=args)
    worker.wait_for("ready")
    return worker, listener


def wait_until_draining(worker: Worker) -> None:
    worker.wait_for_log("Draining")


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_next_request_on_a_keepalive_connection_is_answered_with_connection_close(http: str) -> None:
    worker, listener = ready_worker("--http", http)
    with socket.create_connection(listener.getsockname()) as conn:
        conn.sendall(REQUEST)
        assert b"connection: close" not in read_response(conn).lower()
        worker.signal(signal.SIGTERM)
        wait_until_draining(worker)
        conn.sendall(REQUEST)
        head = read_response(conn)
        assert head.startswith(b"HTTP/1.1 200") and b"connection: close" in head.lower()
        assert closed_by_peer(conn, 5)
    assert worker.finish()[0] == 0


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_idle_keepalive_connection_is_closed_only_after_a_quiet_grace(http: str) -> None:
    worker, listener = ready_worker("--http", http)
    with socket.create_connection(listener.getsockname()) as conn:
        conn.sendall(REQUEST)
        read_response(conn)
        worker.signal(signal.SIGTERM)
        wait_until_draining(worker)
        began = time.monotonic()
        assert not closed_by_peer(conn, 0.3)  # not closed at once, as stock uvicorn does
        assert closed_by_peer(conn, 5)
        assert time.monotonic() - began >= 0.4
    assert worker.finish()[0] == 0


def unsent_bytes(conn: socket.socket) -> int:
    """Bytes still in our send queue (SIOCOUTQ): 0 once the peer's socket holds all of them."""
    return struct.unpack("i", fcntl.ioctl(conn.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]


def test_pipelined_requests_are_all_answered_and_only_the_last_says_close() -> None:
    worker, listener = ready_worker("--http", "httptools")
    with socket.create_connection(listener.getsockname()) as conn:
        conn.sendall(b"GET /slow?s=0.5 HTTP/1.1\r\nHost: test\r\n\r\n")
        deadline = time.monotonic() + 5
        while worker.wait_for("heartbeat", after=len(worker.messages))["in_flight"] != 1:
            assert time.monotonic() < deadline
        conn.sendall(REQUEST * 2)
        while unsent_bytes(conn):  # the pipelined bytes are in the worker's socket before the signal
            assert time.monotonic() < deadline, unsent_bytes(conn)
            time.sleep(0.001)
        worker.signal(signal.SIGTERM)
        heads = [read_response(conn) for _ in range(3)]
        assert all(head.startswith(b"HTTP/1.1 200") for head in heads)
        assert [b"connection: close" in head.lower() for head in heads] == [False, False, True]
        assert closed_by_peer(conn, 5)
    assert worker.finish()[0] == 0


@pytest.mark.parametrize("ws", ["websockets-sansio", "websockets"])
def test_websocket_clients_are_told_going_away_1001(ws: str) -> None:
    worker, listener = ready_worker("--ws", ws)
    host, port = listener.getsockname()
    with websocket_connect(f"ws://{host}:{port}/echo", open_timeout=5) as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == f"{worker.pid}:hi"
        worker.signal(signal.SIGTERM)
        with pytest.raises(Exception):
            for _ in range(10):
                ws.recv(timeout=5)
        assert ws.close_code == 1001
    assert worker.finish()[0] == 0


@pytest.mark.parametrize("ws", ["websockets-sansio", "websockets"])
def test_websocket_clients_of_a_drain_the_arbiter_calls_a_restart_are_told_1012(ws: str) -> None:
    worker, listener = ready_worker("--ws", ws)
    host, port = listener.getsockname()
    with websocket_connect(f"ws://{host}:{port}/echo", open_timeout=5) as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == f"{worker.pid}:hi"
        worker.channel.sendall(b'{"type":"drain","reason":"restart"}\n')
        ws.send("after")  # answered only once the worker's loop ran again, so it has read the channel
        assert ws.recv(timeout=5) == f"{worker.pid}:after"
        worker.signal(signal.SIGTERM)
        with pytest.raises(Exception):
            for _ in range(10):
                ws.recv(timeout=5)
        assert ws.close_code == 1012
    assert worker.finish()[0] == 0


def test_graceful_timeout_bounds_the_drain() -> None:
    worker, listener = ready_worker("--graceful-timeout", "2")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: httpx.get(url_of(listener) + "/slow?s=30", timeout=40))
        deadline = time.monotonic() + 5
        while worker.wait_for("heartbeat", after=len(worker.messages))["in_flight"] != 1:
            assert time.monotonic() < deadline
        began = time.monotonic()
        worker.signal(signal.SIGTERM)
        code, _, err = worker.finish(timeout=10)
    assert code == 0 and time.monotonic() - began < 3.0, err
    assert "Drain budget spent" in err


@pytest.mark.parametrize("client,http,loop", [
    ("wrk", "httptools", "uvloop"), ("wrk", "h11", "uvloop"), ("wrk", "httptools", "asyncio"),
    ("httpx", "httptools", "uvloop"), ("httpx", "h11", "asyncio"),
])
def test_draining_one_of_two_workers_under_keepalive_load_fails_no_request(client: str, http: str, loop: str) -> None:
    if client == "wrk" and shutil.which("wrk") is None:
        pytest.fail("wrk is not installed (Debian package `wrk`; scripts/test.sh's install stage installs it)")
    connections = 64 if client == "wrk" else 8
    result = measure_drain(client=client, http=http, seconds=3.0, connections=connections, loop=loop)
    assert result.drained_exit == 0
    assert result.requests > 100
    assert result.failures == 0, result.detail
