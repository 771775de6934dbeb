"""In-place binary upgrade (`ctl upgrade`, SIGUSR2): the arbiter re-executes the binary installed at its
path with the same pid, adopting its sockets and workers; a pre-flight refuses a binary that cannot
take over, and nothing changes then.

The arbiter runs from a copy in the test's directory, so "installing a new binary" is a rename over
that path (as dpkg does); a copy with bytes appended is a different build of the same version."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ARBITER_BIN, Arbiter, wait_until
from test_zero_drop import assert_no_failed_request, ctl, start_load  # noqa: F401  (start_load is a fixture)

QUIET = ["--no-access-log"]


@pytest.fixture
def installed(workdir) -> Path:
    """A copy of the arbiter binary at a path of its own, which the test can replace."""
    path = workdir / "bin" / "arbiter"
    path.parent.mkdir()
    shutil.copy2(ARBITER_BIN, path)
    return path


def install(path: Path, content: bytes, mode: int = 0o755) -> None:
    """Replace the binary the way a package manager does: write beside it, then rename over it."""
    staged = path.with_name(path.name + ".new")
    staged.write_bytes(content)
    staged.chmod(mode)
    os.replace(staged, path)


def install_new_build(path: Path, tag: bytes) -> None:
    install(path, Path(ARBITER_BIN).read_bytes() + tag)


def run_installed(arbiter: Arbiter, installed: Path, workers: int = 2, extra=(), **kwargs) -> None:
    arbiter.run(workers=workers, extra=[*QUIET, *extra], binary=installed, **kwargs)


def status(arbiter: Arbiter) -> dict:
    return json.loads(ctl(arbiter, "--json", "status"))


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def settled_fds(pid: int) -> int:
    """The fd count once a control connection just used (ours) has been closed on the arbiter's side."""
    previous: list[int] = []

    def stable():  # the same count on two polls in a row (wait_until's interval apart)
        now = open_fds(pid)
        same = previous == [now]
        previous[:] = [now]
        return now if same else None
    return wait_until(stable, 10, "a stable fd count")


def assert_fds_back_to(pid: int, count: int) -> None:
    wait_until(lambda: open_fds(pid) == count, 10, f"the arbiter's fd count back at {count} (now {open_fds(pid)})")


def upgrade(arbiter: Arbiter) -> subprocess.CompletedProcess:
    return subprocess.run([str(ARBITER_BIN), "ctl", "--control", str(arbiter.control_path), "upgrade"],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("spawner_args", [pytest.param([], id="exec"), pytest.param(["--preload"], id="preload")])
def test_upgrade_under_keep_alive_load_keeps_pid_workers_and_fds_and_fails_no_request(arbiter, installed, start_load,
                                                                                      spawner_args):
    run_installed(arbiter, installed, extra=spawner_args)
    workers = arbiter.wait_ready(2)
    before = status(arbiter)
    fds_before = settled_fds(arbiter.pid)
    load = start_load(arbiter)
    load.wait_answered(500)

    for round_ in (1, 2):  # a second upgrade right after the first works too
        install_new_build(installed, f"build {round_}".encode())
        result = upgrade(arbiter)
        assert result.returncode == 0, result.stderr + arbiter.tail(40)
        assert "upgraded in place" in result.stdout
        load.wait_answered(300)

    report = load.stop()
    after = status(arbiter)
    assert_no_failed_request(report, arbiter)
    assert after["pid"] == before["pid"] == arbiter.pid
    assert {w["pid"] for w in after["workers"]} == workers, "no worker was restarted"
    assert after["upgrades"] == 2 and after["build"] != before["build"] and after["upgraded_at"] is not None
    assert after["previous_build"] != after["build"]
    if spawner_args:
        assert after["zygote"]["pid"] == before["zygote"]["pid"]
    assert_fds_back_to(arbiter.pid, fds_before)
    assert f"to 0.1.0 (build {after['build']})" in arbiter.output() or after["build"] in arbiter.output()
    # The adopted pool still works: scale up (a fork from the adopted zygote with --preload) and reload.
    ctl(arbiter, "scale", "3")
    ctl(arbiter, "reload")
    assert status(arbiter)["ready_workers"] == 3


def test_upgrade_to_a_binary_whose_preflight_fails_is_refused_and_nothing_changes(arbiter, installed):
    run_installed(arbiter, installed)
    workers = arbiter.wait_ready(2)
    before = status(arbiter)
    fds_before = settled_fds(arbiter.pid)
    install(installed, b"#!/bin/sh\necho 'this arbiter cannot read upgrade state version 1' >&2\nexit 1\n")

    result = upgrade(arbiter)

    assert result.returncode == 1
    assert "cannot read upgrade state version 1" in result.stderr and "(failed)" in result.stderr
    after = status(arbiter)
    assert after["pid"] == before["pid"] and after["build"] == before["build"] and after["upgrades"] == 0
    assert {w["pid"] for w in after["workers"]} == workers
    assert arbiter.try_get_json() is not None
    assert_fds_back_to(arbiter.pid, fds_before)
    assert "keeps running as it was" in arbiter.output()


def test_upgrade_to_a_missing_binary_is_refused(arbiter, installed):
    run_installed(arbiter, installed)
    arbiter.wait_ready(2)
    installed.unlink()

    result = upgrade(arbiter)

    assert result.returncode == 1
    assert "pre-flight" in result.stderr
    assert status(arbiter)["upgrades"] == 0


def test_sigusr2_upgrades_in_place(arbiter, installed):
    run_installed(arbiter, installed)
    workers = arbiter.wait_ready(2)
    install_new_build(installed, b"usr2")

    arbiter.signal(signal.SIGUSR2)

    wait_until(lambda: status(arbiter)["upgrades"] == 1, 30, "the upgrade after SIGUSR2")
    assert {w["pid"] for w in status(arbiter)["workers"]} == workers


class NotifySocket:
    """A stand-in for systemd's notify socket: every datagram the arbiter sends, with when it was read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[tuple[float, set[str]]] = []

    def read(self) -> list[tuple[float, set[str]]]:
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return self.messages
            self.messages.append((time.monotonic(), set(data.decode().split("\n"))))

    def first_after(self, since: float, line: str, timeout: float) -> tuple[float, set[str]]:
        """The first datagram read at or after `since` with this line: when it was read, and its lines."""
        def found():
            return next(((at, lines) for at, lines in self.read() if at >= since and line in lines), None)
        return wait_until(found, timeout, f"{line} from the arbiter")


@pytest.fixture
def notify(workdir):
    stand_in = NotifySocket(workdir / "notify.sock")
    yield stand_in
    stand_in.sock.close()


def test_the_systemd_watchdog_is_pinged_at_once_after_an_upgrade(arbiter, installed, notify):
    """Each image pings at once, not one interval after it starts: the ping before the exec is the
    last systemd saw, so waiting a whole interval after it let two upgrades 5 s apart overrun
    WatchdogSec (the e2e run's watchdog fired 0.6 s after its SIGSTOP, 10 s after the last ping)."""
    interval = 5.0  # WATCHDOG_USEC / 2
    started = time.monotonic()
    run_installed(arbiter, installed, env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": str(int(2 * interval * 1e6))})
    arbiter.wait_ready(2)
    assert notify.first_after(started, "WATCHDOG=1", 5)[0] - started < interval / 2
    notify.first_after(started, "READY=1", 5)

    install_new_build(installed, b"watchdog")
    before = time.monotonic()
    assert upgrade(arbiter).returncode == 0
    reloading, lines = notify.first_after(before, "RELOADING=1", 5)
    assert "WATCHDOG=1" in lines  # pinged right before the exec
    after_exec, _ = notify.first_after(reloading + 1e-6, "WATCHDOG=1", interval)
    assert after_exec - reloading < interval / 2, "the new image waited for its timer before its first ping"
    notify.first_after(reloading, "READY=1", 10)


def test_upgrade_during_a_reload_is_refused_as_busy(arbiter, installed):
    run_installed(arbiter, installed, workers=1, app="slow_boot:app", env={"SLOW_BOOT_SECONDS": "3"})
    arbiter.wait_ready(1, timeout=60)
    ctl(arbiter, "--no-wait", "reload")

    result = upgrade(arbiter)

    assert result.returncode == 1
    assert "(busy_upgrading)" in result.stderr and "reload" in result.stderr
