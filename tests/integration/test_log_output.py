"""The log path never blocks anything, and a failing log output kills nothing (issue 19).

Workers write into pipes the arbiter reads; the arbiter writes its output through a bounded buffer
without ever waiting, dropping (and counting) what does not fit. Fault injection with real workers
under load: an output pipe that nobody reads, and a --log-file on a filesystem that is full.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from conftest import ARBITER_BIN, free_port, wait_until

BLOCKED_SECONDS = 15.0


def ctl(arbiter, *args: str, timeout: float = 10.0) -> subprocess.CompletedProcess:
    return subprocess.run([str(ARBITER_BIN), "ctl", "--control", str(arbiter.control_path), *args],
                          capture_output=True, text=True, timeout=timeout)


def metric(metrics_url: str, name: str) -> float:
    text = httpx.get(f"{metrics_url}/metrics", timeout=5).text
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics:\n{text[:3000]}"
    return float(match.group(1))


def drain(fd: int, into: bytearray) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not chunk:
            return
        into += chunk


def test_an_output_pipe_nobody_reads_stops_neither_serving_nor_ctl(arbiter, workdir):
    fifo = workdir / "output.fifo"
    os.mkfifo(fifo)
    # The test holds the read end and does not read: journald falling behind, `| slow-consumer`.
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    fcntl.fcntl(reader, fcntl.F_SETPIPE_SZ, 4096)  # the smallest pipe: full after a few lines
    metrics_url = f"http://127.0.0.1:{free_port()}"
    try:
        arbiter.run(app="chatty:app", workers=2, extra=["--metrics", metrics_url[len("http://"):]],
                    wrapper=["/bin/sh", "-c", f'exec "$@" >{fifo} 2>&1', "sh"])
        received = bytearray()
        # Until ready, the output is read: only the blocked part of the test is about blocking.
        def ready() -> bool:
            drain(reader, received)
            return arbiter.try_get_json() is not None and b"workers ready" in received
        wait_until(ready, 60, "the workers serving")

        served = 0
        slowest_ctl = 0.0
        deadline = time.monotonic() + BLOCKED_SECONDS
        with httpx.Client(base_url=arbiter.base_url(), timeout=5) as client:
            while time.monotonic() < deadline:
                assert client.get("/noise", params={"lines": 200}).status_code == 200
                assert client.get("/").status_code == 200
                served += 2
                if served % 20 == 0:
                    started = time.monotonic()
                    status = ctl(arbiter, "--json", "status", timeout=5)
                    slowest_ctl = max(slowest_ctl, time.monotonic() - started)
                    assert status.returncode == 0, status.stderr
        assert slowest_ctl < 1.0, f"ctl status took {slowest_ctl:.2f} s while the output was blocked"
        assert served >= 20, served

        # The output moves again: the notice and the counter say what was lost.
        def notice() -> bool:
            drain(reader, received)
            return b"log lines dropped (output blocked for" in received
        wait_until(notice, 20, "the dropped-lines notice after the output moved again")
        assert metric(metrics_url, "arbiter_log_lines_dropped_total") > 0
    finally:
        os.close(reader)


@pytest.fixture
def small_tmpfs(workdir):
    """A 2 MiB tmpfs of our own (the tests run as root), unmounted at teardown."""
    mount = workdir / "logs"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Writes a file until the filesystem is full (ENOSPC); returns it."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        chunk = b"f" * 65536
        while True:
            try:
                if os.write(fd, chunk) == 0:
                    break
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
    finally:
        os.close(fd)
    return filler


def ready_workers(arbiter) -> dict[int, int]:
    """{slot id: pid} of the ready workers, from `ctl status`."""
    status = json.loads(ctl(arbiter, "--json", "status").stdout)
    return {w["id"]: w["pid"] for w in status["workers"] if w.get("state") == "ready"}


def test_a_full_log_filesystem_stops_neither_recycle_nor_restart_and_logging_resumes(small_tmpfs, arbiter):
    log_file = small_tmpfs / "app.log"
    metrics_url = f"http://127.0.0.1:{free_port()}"
    arbiter.run(app="chatty:app", workers=2,
                extra=["--log-file", str(log_file), "--metrics", metrics_url[len("http://"):]])
    arbiter.wait_ready(2)
    filler = fill(small_tmpfs)
    # Log lines now meet ENOSPC: the access lines of these requests, at least.
    with httpx.Client(base_url=arbiter.base_url(), timeout=5) as client:
        wait_until(lambda: client.get("/noise", params={"lines": 50}).status_code == 200
                   and "cannot write the log output" in arbiter.output(), 30,
                   "the log file's failure reported on stderr")
    assert metric(metrics_url, "arbiter_log_write_errors_total") > 0

    before = ready_workers(arbiter)
    slot, old_pid = sorted(before.items())[0]
    recycled = ctl(arbiter, "recycle", str(slot), timeout=60)
    assert recycled.returncode == 0, recycled.stdout + recycled.stderr
    wait_until(lambda: ready_workers(arbiter).get(slot) not in (None, old_pid), 60, "the recycled worker replaced")

    crashed_slot, crashed_pid = sorted(ready_workers(arbiter).items())[-1]
    os.kill(crashed_pid, signal.SIGKILL)
    wait_until(lambda: ready_workers(arbiter).get(crashed_slot) not in (None, crashed_pid), 60,
               "the crashed worker restarted and ready")
    assert len(ready_workers(arbiter)) == 2
    assert arbiter.output().count("cannot write the log output") == 1, arbiter.output()[-3000:]

    filler.unlink()  # space returns: logging resumes by itself
    with httpx.Client(base_url=arbiter.base_url(), timeout=5) as client:
        wait_until(lambda: client.get("/print", params={"text": "after-space-returned"}).status_code == 200
                   and "after-space-returned" in log_file.read_text(errors="replace"), 30,
                   "a line written after space returned")
    assert "output failed for" in log_file.read_text(errors="replace")


def test_a_print_from_the_app_carries_the_worker_prefix(arbiter, workdir):
    log_file = workdir / "app.log"
    arbiter.run(app="chatty:app", workers=1, extra=["--log-file", str(log_file)])
    pid = next(iter(arbiter.wait_ready(1)))
    assert arbiter.get("/print?text=printed-by-the-app").status_code == 200
    wait_until(lambda: "printed-by-the-app" in log_file.read_text(), 10, "the print in the log")
    line = next(line for line in log_file.read_text().splitlines() if line.endswith("printed-by-the-app"))
    assert line == f"[worker 1 pid {pid}] printed-by-the-app"


def test_a_print_from_the_app_is_a_json_object_with_log_format_json(arbiter, workdir):
    log_file = workdir / "app.log"
    arbiter.run(app="chatty:app", workers=1, extra=["--log-file", str(log_file), "--log-format", "json"])
    pid = next(iter(arbiter.wait_ready(1)))
    assert arbiter.get("/print?text=printed-by-the-app").status_code == 200
    wait_until(lambda: "printed-by-the-app" in log_file.read_text(), 10, "the print in the log")
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]  # every line is JSON
    printed = next(line for line in lines if line.get("message") == "printed-by-the-app")
    assert (printed["worker"], printed["pid"]) == (1, pid)
