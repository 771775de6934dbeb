"""The worker's end of the channel: JSON lines both ways, EOF from the arbiter (docs/worker-channel.md).

The socket is non-blocking so a stalled arbiter can never freeze the event loop: what the kernel
does not take at once is kept and flushed when the socket becomes writable. Lines from the arbiter
may carry open files (SCM_RIGHTS, e.g. the reopened log file): each complete line goes to
``on_message`` with the files received up to it, which the handler then owns. EOF (or a reset) means
the arbiter is gone, so ``on_lost`` runs (the shim exits at once).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Callable, Mapping

MAX_LINE_BYTES = 4096
MAX_FILES_PER_READ = 4

MessageHandler = Callable[[Mapping[str, object], list[int]], None]


class Channel:
    def __init__(self, sock: socket.socket | None) -> None:
        self._sock = sock
        self._pending = bytearray()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_lost: Callable[[], None] = lambda: None
        self._on_message: MessageHandler | None = None
        self._incoming = bytearray()
        self._files: list[int] = []
        if sock is not None:
            sock.setblocking(False)
            sock.set_inheritable(False)

    @classmethod
    def from_fd(cls, fd: int | None) -> Channel:
        if fd is None:
            return cls(None)
        sock = socket.socket(fileno=fd)
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
            sock.detach()
            raise OSError(f"channel fd {fd} is not an AF_UNIX/SOCK_STREAM socket")
        return cls(sock)

    def release(self) -> socket.socket | None:
        """Hand the socket, blocking again, to another owner (the zygote's fork loop); this Channel
        sends nothing afterwards."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.setblocking(True)
        return sock

    def close(self) -> None:
        """Close the socket at the worker's exit (one left to the collector is a ResourceWarning),
        after one last non-blocking try at what is still pending."""
        if self._sock is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self.detach()
        self._loop = None
        sock, self._sock = self._sock, None
        if self._pending:
            try:
                sock.send(self._pending)
            except OSError:
                pass
        self._close_files()
        sock.close()

    def attach(
        self, loop: asyncio.AbstractEventLoop, on_lost: Callable[[], None], on_message: MessageHandler | None = None
    ) -> None:
        """Watch for the arbiter's messages and for it going away; call from inside the running loop."""
        self._loop = loop
        self._on_lost = on_lost
        self._on_message = on_message
        if self._sock is not None:
            loop.add_reader(self._sock.fileno(), self._on_readable)

    def detach(self) -> None:
        if self._loop is not None and self._sock is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._loop.remove_writer(self._sock.fileno())
        self._loop = None

    def send(self, message: Mapping[str, object]) -> None:
        if self._sock is None:
            return
        line = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        if len(line) > MAX_LINE_BYTES:
            raise ValueError(f"channel message of {len(line)} bytes exceeds {MAX_LINE_BYTES}")
        self._pending += line
        self._flush()

    def _flush(self) -> None:
        assert self._sock is not None
        try:
            while self._pending:
                sent = self._sock.send(self._pending)
                del self._pending[:sent]
        except BlockingIOError:
            if self._loop is not None:
                self._loop.add_writer(self._sock.fileno(), self._flush)
            return
        except OSError:
            self._lost()
            return
        if self._loop is not None:
            self._loop.remove_writer(self._sock.fileno())

    def _on_readable(self) -> None:
        assert self._sock is not None
        try:
            data, files, _flags, _address = socket.recv_fds(
                self._sock, MAX_LINE_BYTES, MAX_FILES_PER_READ, socket.MSG_CMSG_CLOEXEC
            )
        except BlockingIOError:
            return
        except OSError:
            data, files = b"", []
        self._files.extend(files)
        if not data:
            self._close_files()
            self._lost()
            return
        self._incoming += data
        while b"\n" in self._incoming:
            line, _, rest = bytes(self._incoming).partition(b"\n")
            self._incoming = bytearray(rest)
            self._dispatch(line)
        if len(self._incoming) > MAX_LINE_BYTES:
            self._incoming.clear()  # not a line of this protocol: drop it rather than grow

    def _dispatch(self, line: bytes) -> None:
        files, self._files = self._files, []
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if self._on_message is None or not isinstance(message, dict):
            for fd in files:
                os.close(fd)
            return
        self._on_message(message, files)

    def _close_files(self) -> None:
        for fd in self._files:
            os.close(fd)
        self._files = []

    def _lost(self) -> None:
        self.detach()
        self._on_lost()
