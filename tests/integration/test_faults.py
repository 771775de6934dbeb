"""Fault injection: what production hosts do to a supervisor, under real load with real workers.

- the arbiter is paused (SIGSTOP, as a VM pause or CPU throttling would) and resumed: the workers
  that kept serving during the pause stay, and a worker that really is blocked is still killed;
- the control socket is crowded by idle connections: `ctl status` and `ctl health` still answer;
- an app starts a child and a `setsid` daemon: after TERM of the arbiter, neither is running.

Each scenario is bounded in time and waits on conditions; the pause itself is the fault, measured
with the load's own progress (requests answered while the arbiter could not run)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time

import httpx
import pytest

from conftest import ARBITER_BIN, children_of, cmdline, pid_alive, wait_until
from test_zero_drop import QUIET, assert_no_failed_request, start_load  # noqa: F401  (start_load is a fixture)

PAUSE_SECONDS = 6.0
TIMEOUT = 2.0


def status(arbiter) -> dict:
    result = subprocess.run([str(ARBITER_BIN), "ctl", "--control", str(arbiter.control_path), "--json", "status"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"ctl status exited {result.returncode}: {result.stderr}"
    return json.loads(result.stdout)


def restarts(arbiter) -> int:
    return sum(worker["restarts"] for worker in status(arbiter)["workers"])


def pause(arbiter, seconds: float, load) -> None:
    """SIGSTOP the arbiter for `seconds`, then SIGCONT it; the load must keep being served meanwhile."""
    before = load.progress().get("ok", 0)
    stopped_at = time.monotonic()
    arbiter.signal(signal.SIGSTOP)
    try:
        wait_until(lambda: time.monotonic() - stopped_at >= seconds, seconds + 5, f"{seconds} s of pause", interval=0.1)
        served = load.progress().get("ok", 0) - before
    finally:
        arbiter.signal(signal.SIGCONT)
    assert served > 0, "no request was answered while the arbiter was stopped: the workers are not serving alone"


# --------------------------------------------------------------------------------------------------
# The arbiter's own stall


def test_paused_arbiter_kills_no_healthy_worker_when_it_resumes(arbiter, start_load):
    arbiter.run(workers=2, extra=["--timeout", str(TIMEOUT), *QUIET])
    pids = arbiter.wait_ready(2)
    load = start_load(arbiter, connections=16, seconds=120)
    load.wait_answered(200)

    pause(arbiter, PAUSE_SECONDS, load)

    # Well past --timeout plus a heartbeat interval after the resume: a wrong kill would have happened.
    load.wait_answered(200, timeout=60)
    resumed_at = time.monotonic()
    wait_until(lambda: time.monotonic() - resumed_at >= TIMEOUT * 2, TIMEOUT * 2 + 5, "two timeouts after the resume")
    report = load.stop()
    assert_no_failed_request(report, arbiter)
    assert restarts(arbiter) == 0, arbiter.tail(40)
    assert arbiter.workers() == pids
    assert "no heartbeat for" not in arbiter.output()
    stall_lines = [line for line in arbiter.output().splitlines() if "event loop stalled" in line]
    assert len(stall_lines) == 1, stall_lines  # logged once, with the length of the stall
    assert "stalled for " in stall_lines[0]


def test_blocked_worker_is_still_killed_after_the_arbiter_was_paused(arbiter):
    heartbeat_interval = TIMEOUT / 4
    arbiter.run(app="blocking:app", workers=1, extra=["--timeout", str(TIMEOUT)])
    (victim,) = arbiter.wait_ready(1)
    arbiter.signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        wait_until(lambda: time.monotonic() - stopped_at >= TIMEOUT * 2, TIMEOUT * 2 + 5, "a pause of two timeouts")
    finally:
        arbiter.signal(signal.SIGCONT)
    wait_until(lambda: "event loop stalled" in arbiter.output(), 10, "the stall to be noticed")

    def block():
        try:
            arbiter.get("/block?s=60", timeout=60)
        except httpx.HTTPError:
            pass  # the worker is killed under this request: that is the point

    blocked_at = time.monotonic()
    threading.Thread(target=block, daemon=True).start()
    wait_until(lambda: "no heartbeat for" in arbiter.output(), TIMEOUT + heartbeat_interval + 5,
               "the arbiter to report the missing heartbeats", interval=0.01)
    detected_after = time.monotonic() - blocked_at
    assert detected_after <= TIMEOUT + heartbeat_interval, f"detected only {detected_after:.2f}s after the loop blocked"
    wait_until(lambda: not pid_alive(victim), 10, f"blocked worker {victim} to be killed")


# --------------------------------------------------------------------------------------------------
# A crowded control socket


def timed_ctl(arbiter, *command: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = subprocess.run([str(ARBITER_BIN), "ctl", "--control", str(arbiter.control_path), *command],
                            capture_output=True, text=True, timeout=30)
    return result, time.monotonic() - started


def test_ctl_status_and_health_answer_within_1s_beside_200_idle_control_connections(arbiter, start_load):
    arbiter.run(workers=2, extra=QUIET)
    arbiter.wait_ready(2)
    load = start_load(arbiter, connections=8, seconds=60)
    load.wait_answered(100)
    idle = []
    try:
        for _ in range(200):  # a buggy client, a HEALTHCHECK that hangs: connected, silent
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.connect(str(arbiter.control_path))
            idle.append(client)

        for command in (["status"], ["health"]):
            result, took = timed_ctl(arbiter, *command)
            assert result.returncode == 0, f"ctl {command[0]} exited {result.returncode}: {result.stderr}"
            assert "Broken pipe" not in result.stderr and "busy" not in result.stderr
            assert took < 1.0, f"ctl {command[0]} took {took:.2f} s"
    finally:
        for client in idle:
            client.close()
    assert_no_failed_request(load.stop(), arbiter)


def test_idle_control_connections_are_closed_after_about_a_second(arbiter):
    arbiter.run(workers=1)
    arbiter.wait_ready(1)
    idle = []
    try:
        for _ in range(50):
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.connect(str(arbiter.control_path))
            client.settimeout(10)
            idle.append(client)
        connected = time.monotonic()
        for client in idle:
            assert client.recv(4096) == b""  # closed by the arbiter, nothing said
        assert time.monotonic() - connected < 5
    finally:
        for client in idle:
            client.close()


# --------------------------------------------------------------------------------------------------
# What the app started


def end_if_left(*pids: int) -> None:
    """Teardown for a failed run: the app's sleeps must not outlive the test."""
    for pid in pids:
        if pid_alive(pid) and "sleep" in cmdline(pid):
            os.kill(pid, signal.SIGKILL)


def group_of(pid: int) -> int:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return -1


@pytest.mark.parametrize("spawner_args", [pytest.param([], id="exec"), pytest.param(["--preload"], id="preload")])
def test_term_of_the_arbiter_leaves_neither_a_child_nor_a_daemon_of_the_app_running(arbiter, spawner_args):
    arbiter.run(app="orphans:app", workers=2, extra=spawner_args)
    (worker, _) = arbiter.wait_ready(2)
    child = arbiter.get("/child", timeout=10).json()["child"]
    daemon = arbiter.get("/daemon", timeout=10).json()["daemon"]
    wait_until(lambda: daemon in children_of(arbiter.pid) and group_of(daemon) == daemon, 10,
               "the daemon to be adopted by the arbiter, in a process group of its own")
    assert pid_alive(child) and pid_alive(daemon)
    try:
        arbiter.signal(signal.SIGTERM)
        assert arbiter.wait_exit(60) == 0

        wait_until(lambda: not pid_alive(child) and not pid_alive(daemon), 5, "the child and the daemon to be gone")
    finally:
        end_if_left(child, daemon)
    output = arbiter.output()
    assert f"pid {daemon} (sleep 300)" in output, output[-3000:]
    assert f"pid {child} (" in output, output[-3000:]


def test_a_recycled_worker_takes_the_child_it_started_with_it_under_load(arbiter, start_load):
    arbiter.run(app="orphans:app", workers=2, extra=QUIET)
    arbiter.wait_ready(2)
    load = start_load(arbiter, connections=8, seconds=90)
    load.wait_answered(100)
    answer = arbiter.get("/child", timeout=10).json()
    child, worker = answer["child"], answer["pid"]
    slot = next(w["id"] for w in status(arbiter)["workers"] if w["pid"] == worker)

    result = subprocess.run([str(ARBITER_BIN), "ctl", "--control", str(arbiter.control_path), "recycle", str(slot)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr

    try:
        wait_until(lambda: not pid_alive(worker), 30, f"the replaced worker {worker} to exit")
        wait_until(lambda: not pid_alive(child), 5, f"its child {child} to go with it")
    finally:
        end_if_left(child)
    assert_no_failed_request(load.stop(), arbiter)
    assert f"pid {child} (" in arbiter.output()


# --------------------------------------------------------------------------------------------------
# Smaller findings of the same run


def test_a_burst_of_100_sighups_is_one_reload(arbiter, start_load):
    arbiter.run(workers=2, extra=QUIET)
    arbiter.wait_ready(2)
    load = start_load(arbiter, connections=8, seconds=120)
    load.wait_answered(100)
    before = status(arbiter)["reloads"]

    # Paced (a deploy script in a loop, not one kernel-coalesced burst): each arrives on its own.
    for _ in range(100):
        arbiter.signal(signal.SIGHUP)
        time.sleep(0.003)

    wait_until(lambda: status(arbiter)["reload"]["state"] == "done", 60, "the reload to be done")
    assert status(arbiter)["reloads"] == before + 1
    assert arbiter.output().count("rolling reload to generation") == 1
    assert_no_failed_request(load.stop(), arbiter)


def test_a_scale_overtaken_by_another_says_so_and_exits_1(arbiter):
    arbiter.run(workers=2, app="slow_boot:app", env={"SLOW_BOOT_SECONDS": "3"})
    arbiter.wait_ready(2, timeout=60)
    command = [str(ARBITER_BIN), "ctl", "--control", str(arbiter.control_path), "scale"]
    first = subprocess.Popen([*command, "6"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: "scale to 6 workers" in arbiter.output(), 30, "the scale to 6 to begin")
        second = subprocess.run([*command, "2"], capture_output=True, text=True, timeout=120)
        out, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == 0, second.stderr
    assert first.returncode == 1, (out, err)
    assert "overtaken" in err and "6" in err and "2" in err, err


def test_address_in_use_is_said_once(arbiter):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        arbiter.run(workers=1, bind=f"127.0.0.1:{holder.getsockname()[1]}")
        assert arbiter.wait_exit(20) == 2
    assert arbiter.output().lower().count("address already in use") == 1, arbiter.output()


def test_a_config_file_type_error_names_the_file_and_the_key(arbiter, workdir):
    config = workdir / "arbiter.json"
    config.write_text('{"timeout": "soon"}')
    arbiter.run(workers=1, extra=["--config", str(config)])
    assert arbiter.wait_exit(20) == 2
    assert f"--config {config}: 'timeout': 'soon'" in arbiter.output(), arbiter.output()


def test_replacing_a_stale_control_socket_is_logged(arbiter):
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(arbiter.control_path))  # bound, never listening, closed: what a killed arbiter leaves
    stale.close()
    arbiter.run(workers=1)
    arbiter.wait_ready(1)
    assert f"replacing the stale control socket {arbiter.control_path}" in arbiter.output()
