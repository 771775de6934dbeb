"""Adopt the listening sockets the arbiter passed at fds 3..3+L-1.

socket.socket(fileno=fd) asks the kernel for the real family and type (SO_DOMAIN, SO_TYPE), so TCP
over IPv4, IPv6 and UNIX sockets all come back right; uvicorn's own ``--fd`` path assumes AF_UNIX.
Each fd is checked to be a listening stream socket, because serving on anything else would fail
later in a way that is much harder to read. Our copies are made close-on-exec so a subprocess of the
app cannot keep a listener (or its accept queue) alive; this flag is per-fd and does not touch the
arbiter's or the other workers' descriptors.

At a stop, ``accept_queued`` takes what is already waiting in the accept queues before the worker
closes its copies: when the last copy of a listener closes, the kernel resets every connection still
queued on it, and at the end of a graceful stop the last copy is a worker's (the arbiter closes its
own first, so that new clients are refused instead of queued where nobody accepts).
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterable

ACCEPT_SWEEP_MAX = 65535
"""At most this many connections taken per listener at a stop (the largest --backlog)."""


class SocketInvalid(Exception):
    """An inherited fd is not a listening stream socket: the arbiter passed the wrong fds."""


def adopt_listener(fd: int) -> socket.socket:
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise SocketInvalid(f"fd {fd} is not a socket ({os.strerror(exc.errno or 0)})") from None
    if sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise SocketInvalid(f"fd {fd} is not a stream socket (type {sock.type!r})")
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        sock.detach()
        raise SocketInvalid(f"fd {fd} is a socket but not listening")
    sock.set_inheritable(False)
    return sock


def adopt_listeners(fds: Iterable[int]) -> list[socket.socket]:
    return [adopt_listener(fd) for fd in fds]


def describe(sock: socket.socket) -> str:
    address = sock.getsockname()
    if sock.family == socket.AF_INET6:
        return f"http://[{address[0]}]:{address[1]}"
    if sock.family == socket.AF_INET:
        return f"http://{address[0]}:{address[1]}"
    name = address.decode(errors="replace") if isinstance(address, bytes) else str(address)
    return f"unix:{name or '(unnamed)'}"


def accept_queued(listeners: Iterable[socket.socket]) -> list[socket.socket]:
    """Every connection already waiting in the listeners' accept queues, taken without blocking."""
    accepted: list[socket.socket] = []
    for listener in listeners:
        listener.setblocking(False)
        for _ in range(ACCEPT_SWEEP_MAX):
            try:
                connection, _address = listener.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno == errno.ECONNABORTED:
                    continue  # the client gave up while queued
                break  # EMFILE and the like: what is left is reset, as without the sweep
            accepted.append(connection)
    return accepted
