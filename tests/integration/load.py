"""HTTP load from a second process, counting every failed request at the client.

Run as a script (the child), driven from a test with `LoadRun` (the parent side):

    python load.py --url http://127.0.0.1:8000/ --connections 48 --close-connections 0 \
        --seconds 60 --max-requests 2000000 [--progress FILE]

Each of the connections sends one request, reads the whole response, and sends the next at once
(never idle, like wrk). A `close` connection sends `Connection: close` and opens a new TCP connection
for every request; a keep-alive connection reconnects only when the server said `Connection: close`.
The run ends at the first of: a line (or EOF) on stdin with --stop-on-stdin, --seconds, --max-requests; a request that
was sent is always finished (answered, failed or timed out) before the run ends.

A request fails when the connection cannot be opened (connect), the request cannot be written
(write), the connection ends or is reset before the whole response arrived (read), no complete
response arrives within --timeout (timeout), or the status is not 2xx (non_2xx). The final report
is one JSON object on stdout: those counts, `total`, `ok`, `failed`, `pids` (answers per worker pid,
from the `"pid"` field of the JSON body), and samples of the errors. With --progress, the same
figures (without samples) are written to that file about ten times a second while the load runs.

Loopback only: the URL's host must be 127.0.0.1, ::1 or localhost.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import urlsplit

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
PID_FIELD = re.compile(rb'"pid"\s*:\s*(\d+)')
HEAD_LIMIT = 64 * 1024
ERROR_KINDS = ("connect", "write", "read", "timeout", "non_2xx")


# --------------------------------------------------------------------------------------------------
# The child: the load itself


class Tally:
    def __init__(self) -> None:
        self.ok = 0
        self.errors = {kind: 0 for kind in ERROR_KINDS}
        self.samples: list[str] = []
        self.pids: dict[int, int] = {}
        self.reconnects = 0
        self.started = time.monotonic()

    def fail(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.samples) < 20:
            self.samples.append(f"{time.monotonic() - self.started:.3f}s {kind}: {detail}")

    def report(self, with_samples: bool) -> dict:
        failed = sum(self.errors.values())
        report = {
            "total": self.ok + failed, "ok": self.ok, "failed": failed, **self.errors,
            "reconnects": self.reconnects, "seconds": round(time.monotonic() - self.started, 3),
            "pids": {str(pid): count for pid, count in sorted(self.pids.items())},
        }
        if with_samples:
            report["samples"] = self.samples
        return report


class ResponseError(Exception):
    """The connection ended or broke before the whole response arrived."""


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """One HTTP/1.1 response: (status, body, the server will close the connection)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as eof:
        raise ResponseError(f"connection closed after {len(eof.partial)} bytes of the response head") from None
    except asyncio.LimitOverrunError:
        raise ResponseError("response head too long") from None
    lines = head.decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/1.") or not status_line[1].isdigit():
        raise ResponseError(f"malformed status line {lines[0]!r}")
    status = int(status_line[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip().lower()
    closing = headers.get("connection") == "close" or status_line[0] == "HTTP/1.0"
    try:
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            chunks = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunks.append(await reader.readexactly(size + 2))
                if size == 0:
                    break
            body = b"".join(chunk[:-2] for chunk in chunks)
        elif closing:
            body = await reader.read()
        else:
            raise ResponseError("response without a length on a keep-alive connection")
    except asyncio.IncompleteReadError as eof:
        raise ResponseError(f"connection closed after {len(eof.partial)} bytes of the response body") from None
    return status, body, closing


async def close_quietly(writer: Optional[asyncio.StreamWriter]) -> None:
    if writer is None:
        return
    try:
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 1.0)
    except Exception:  # noqa: BLE001 - closing a connection the peer already reset
        pass


async def one_connection(tally: Tally, host: str, port: int, path: str, close_each: bool,
                         stop: asyncio.Event, timeout: float, budget: list[int]) -> None:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: arbiter-load\r\n"
        f"Connection: {'close' if close_each else 'keep-alive'}\r\n\r\n"
    ).encode()
    reader: Optional[asyncio.StreamReader] = None
    writer: Optional[asyncio.StreamWriter] = None
    while not stop.is_set() and budget[0] > 0:
        budget[0] -= 1
        if writer is None:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            except Exception as error:  # noqa: BLE001 - any way a connect can fail is a failed request
                tally.fail("timeout" if isinstance(error, asyncio.TimeoutError) else "connect", f"connect: {error!r}")
                await asyncio.sleep(0.01)  # a refused connect returns at once: do not spin
                continue
            tally.reconnects += 1
        assert reader is not None and writer is not None
        try:
            writer.write(request)
            await writer.drain()
        except Exception as error:  # noqa: BLE001 - uvloop raises RuntimeError on a transport the peer reset
            tally.fail("write", repr(error))
            await close_quietly(writer)
            writer = None
            continue
        try:
            status, body, closing = await asyncio.wait_for(read_response(reader), timeout)
        except Exception as error:  # noqa: BLE001 - ResponseError, OSError, or what the loop raises on a reset
            tally.fail("timeout" if isinstance(error, asyncio.TimeoutError) else "read", repr(error))
            await close_quietly(writer)
            writer = None
            continue
        if 200 <= status < 300:
            tally.ok += 1
            found = PID_FIELD.search(body)
            if found:
                pid = int(found.group(1))
                tally.pids[pid] = tally.pids.get(pid, 0) + 1
        else:
            tally.fail("non_2xx", f"status {status}: {body[:200]!r}")
        if closing or close_each:
            if closing:
                # Let the server close first (its side keeps the TIME_WAIT, not our ephemeral port).
                try:
                    await asyncio.wait_for(reader.read(), 1.0)
                except Exception:  # noqa: BLE001 - the response is complete; how the connection ends does not matter
                    pass
            await close_quietly(writer)
            writer = None
    await close_quietly(writer)


async def write_progress(tally: Tally, path: Path, stop: asyncio.Event) -> None:
    temporary = path.with_suffix(".tmp")
    while True:
        temporary.write_text(json.dumps(tally.report(with_samples=False)))
        os.replace(temporary, path)
        if stop.is_set():
            return
        try:
            await asyncio.wait_for(stop.wait(), 0.1)
        except asyncio.TimeoutError:
            pass


async def run_load(options: argparse.Namespace) -> dict:
    url = urlsplit(options.url)
    host, port = url.hostname, url.port or 80
    if host not in LOOPBACK_HOSTS:
        raise SystemExit(f"load.py: refusing non-loopback host {host!r}")
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    tally = Tally()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.call_later(options.seconds, stop.set)

    def stop_on_stdin() -> None:
        # Any bytes, or EOF when the parent goes away. Read by the loop, not by a thread: a daemon thread
        # blocked in stdin's readline when the run ends by --seconds made the interpreter's shutdown abort
        # ("could not acquire lock for <_io.BufferedReader name='<stdin>'>", exit -6).
        try:
            os.read(stdin_fd, 4096)
        except OSError:
            pass
        loop.remove_reader(stdin_fd)
        stop.set()

    stdin_fd = sys.stdin.fileno() if options.stop_on_stdin else -1
    if options.stop_on_stdin:
        loop.add_reader(stdin_fd, stop_on_stdin)
    budget = [options.max_requests]
    progress = asyncio.ensure_future(write_progress(tally, Path(options.progress), stop)) if options.progress else None
    await asyncio.gather(*(
        one_connection(tally, host, port, path, index < options.close_connections, stop, options.timeout, budget)
        for index in range(options.connections)
    ))
    stop.set()
    if options.stop_on_stdin:
        loop.remove_reader(stdin_fd)
    if progress is not None:
        await progress
    return tally.report(with_samples=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--connections", type=int, default=48)
    parser.add_argument("--close-connections", type=int, default=0,
                        help="how many of the connections send Connection: close (the first ones)")
    parser.add_argument("--seconds", type=float, default=60.0, help="hard limit on the run's length")
    parser.add_argument("--max-requests", type=int, default=2_000_000, help="hard limit on requests sent")
    parser.add_argument("--timeout", type=float, default=15.0, help="per connect and per response")
    parser.add_argument("--progress", help="file to write the running figures to")
    parser.add_argument("--stop-on-stdin", action="store_true", help="end the run at a line or EOF on stdin")
    options = parser.parse_args()
    faulthandler.register(signal.SIGUSR1)  # LoadRun asks for the stacks of a load that stopped progressing
    try:
        import uvloop  # the faster loop when the venv has it: more load from the same CPU
        uvloop.install()
    except ImportError:
        pass
    report = asyncio.run(run_load(options))
    print(json.dumps(report), flush=True)


# --------------------------------------------------------------------------------------------------
# The parent: starting, watching and stopping a load from a test


class LoadRun:
    """A running load.py child. `progress()` reads its running figures; `stop()` ends it and returns
    the final report. Always stopped (or killed) by the test's teardown through `close()`."""

    def __init__(self, python: str, url: str, workdir: Path, connections: int = 48, close_connections: int = 0,
                 seconds: float = 60.0, max_requests: int = 2_000_000, timeout: float = 15.0) -> None:
        self.progress_path = workdir / f"load-{os.getpid()}-{time.monotonic_ns()}.json"
        self.seconds = seconds
        self.process = subprocess.Popen(
            [python, str(Path(__file__).resolve()), "--url", url, "--connections", str(connections),
             "--close-connections", str(close_connections), "--seconds", str(seconds),
             "--max-requests", str(max_requests), "--timeout", str(timeout), "--progress", str(self.progress_path), "--stop-on-stdin"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.report: Optional[dict] = None

    def progress(self) -> dict:
        """The latest running figures ({} before the first write)."""
        try:
            return json.loads(self.progress_path.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def pids(self) -> set[int]:
        return {int(pid) for pid in self.progress().get("pids", {})}

    def wait_for(self, predicate: Callable[[dict], bool], timeout: float, message: str) -> dict:
        """Poll the running figures until predicate(figures) holds; fail after timeout seconds or if
        the load ended first."""
        deadline = time.monotonic() + timeout
        while True:
            figures = self.progress()
            if figures and predicate(figures):
                return figures
            if self.process.poll() is not None:
                raise AssertionError(f"the load ended (exit {self.process.returncode}) before: {message}; "
                                     f"figures {figures}; stderr: {self.process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout:.1f}s waiting for the load: {message}; "
                                     f"figures {figures}; the load's stacks:\n{self.stacks()}")
            time.sleep(0.05)

    def stacks(self) -> str:
        """Kill the load after it dumped its Python stacks, and return them (for a failure message)."""
        dumped = b""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGUSR1)
            # faulthandler writes every stack from its signal handler: wait (bounded) until it has.
            stderr = self.process.stderr
            assert stderr is not None
            deadline = time.monotonic() + 5
            while b"most recent call first" not in dumped and time.monotonic() < deadline:
                readable, _, _ = select.select([stderr], [], [], max(0.0, deadline - time.monotonic()))
                chunk = os.read(stderr.fileno(), 65536) if readable else b""
                if not chunk:
                    break
                dumped += chunk
            self.process.kill()
        _, err = self.process.communicate(timeout=10)
        return (dumped + err).decode(errors="replace")[-6000:]

    def wait_answered(self, count: int, timeout: float = 30.0) -> dict:
        """Wait until `count` more requests succeed than have so far."""
        start = self.progress().get("ok", 0)
        return self.wait_for(lambda f: f["ok"] >= start + count, timeout, f"{count} more answered requests")

    def stop(self) -> dict:
        """Ask the load to finish its requests in flight and return its final report."""
        if self.report is not None:
            return self.report
        try:
            out, err = self.process.communicate(b"stop\n", timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate(timeout=10)
            raise AssertionError(f"the load did not stop within 30 s; stderr: {err.decode()[-2000:]}") from None
        if self.process.returncode != 0 or not out.strip():
            raise AssertionError(f"the load failed with exit {self.process.returncode}: {err.decode()[-2000:]}")
        self.report = json.loads(out.decode().strip().splitlines()[-1])
        return self.report

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


if __name__ == "__main__":
    main()
