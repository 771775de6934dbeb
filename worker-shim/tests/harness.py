"""Start `python -m arbiter_worker` the way the arbiter does, without the arbiter.

The harness plays the arbiter: it owns the listening sockets, passes them at fds 3.., passes one
end of a socketpair as the channel, reads JSON lines from it, and sends signals. Every wait has
a deadline.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

SHIM_DIR = Path(__file__).resolve().parent.parent
APPS_DIR = Path(__file__).resolve().parent / "apps"
PYTHON = os.environ.get("ARBITER_TEST_PYTHON", sys.executable)
ARBITER_PROTOCOL = "1"
"""The worker-channel protocol version the harness speaks, as the arbiter does (docs/worker-channel.md)."""


def tcp_listener(host: str = "127.0.0.1") -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(1024)
    return sock


def unix_listener(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(1024)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if sock.family == socket.AF_INET6 else f"http://{host}:{port}"


class Worker:
    def __init__(
        self,
        app: str,
        listeners: Sequence[socket.socket],
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        python: str = PYTHON,
        heartbeat_interval: float = 0.2,
        log_format: str = "text",
        cwd: Path = APPS_DIR,
        module: Sequence[str] = ("-m", "arbiter_worker"),
        board_fd: int | None = None,
    ) -> None:
        """board_fd: passed after the channel (3+L+1), as the arbiter passes its board."""
        self.channel, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        sources = [sock.fileno() for sock in listeners] + [child_end.fileno()]
        if board_fd is not None:
            sources.append(board_fd)
        targets = list(range(3, 3 + len(sources)))
        full_env = dict(os.environ)
        full_env.update(
            PYTHONPATH=str(SHIM_DIR),
            ARBITER_LISTEN_FDS=str(len(listeners)),
            ARBITER_CHANNEL_FD=str(3 + len(listeners)),
            ARBITER_PID=str(os.getpid()),
            ARBITER_WORKER_ID="1",
            ARBITER_GENERATION="0",
            ARBITER_HEARTBEAT_INTERVAL=str(heartbeat_interval),
            ARBITER_LOG_FORMAT=log_format,
            ARBITER_PROTOCOL=ARBITER_PROTOCOL,
        )
        full_env.update(env or {})

        def place_fds() -> None:
            # Move every source out of the way first, so placing one never clobbers another.
            high = [os.dup(fd) for fd in sources]
            for fd, target in zip(high, targets):
                os.dup2(fd, target)  # inheritable
            for fd in high:
                os.close(fd)
            os.setsid()

        self.process = subprocess.Popen(
            [python, *module, *args, app],
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=targets,
            preexec_fn=place_fds,
        )
        child_end.close()
        self.stderr_lines: list[str] = []
        self._stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_reader.start()
        self.channel.settimeout(0.1)
        self._buffer = b""
        self.messages: list[dict[str, object]] = []

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in iter(self.process.stderr.readline, b""):
            self.stderr_lines.append(line.decode(errors="replace"))

    def wait_for_log(self, text: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.stderr_lines):
            if time.monotonic() >= deadline or self.process.poll() is not None:
                raise TimeoutError(f"{text!r} not logged within {timeout}s")
            time.sleep(0.01)

    @property
    def pid(self) -> int:
        return self.process.pid

    def _poll_channel(self, timeout: float) -> bool:
        """Read what the channel has within `timeout`; False on EOF."""
        self.channel.settimeout(timeout)
        try:
            data = self.channel.recv(65536)
        except (TimeoutError, socket.timeout):
            return True
        except OSError:
            return False
        if not data:
            return False
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            assert len(line) + 1 <= 4096
            self.messages.append(json.loads(line))
        return True

    def wait_for(self, message_type: str, timeout: float = 10.0, after: int = 0) -> dict[str, object]:
        """The first message of `message_type` (at index >= after), reading until `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.messages[after:]:
                if message.get("type") == message_type:
                    return message
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no {message_type!r} within {timeout}s; got {self.messages[-5:]}")
            if not self._poll_channel(min(0.1, deadline - time.monotonic())) and self.process.poll() is not None:
                raise EOFError(f"worker exited ({self.process.returncode}) before {message_type!r}")

    def count(self, message_type: str) -> int:
        return sum(1 for message in self.messages if message.get("type") == message_type)

    def pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._poll_channel(min(0.1, max(0.0, deadline - time.monotonic())))

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def finish(self, timeout: float = 15.0) -> tuple[int, str, str]:
        """Wait for the exit (killing it after `timeout`): (returncode, stdout, stderr)."""
        assert self.process.stdout is not None
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        out = self.process.stdout.read()
        self.process.stdout.close()
        self._stderr_reader.join(timeout=5)
        self.channel.close()
        return self.process.returncode, out.decode(errors="replace"), "".join(self.stderr_lines)
