"""Every process the arbiter is responsible for: it reaps what it did not spawn (a subreaper, or PID 1
in a container), a worker killed hard takes its process group with it, a worker that cannot even be
started is a boot failure (not an endless retry), and a reload always ends, queued or bounded."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import APPS_DIR, ARBITER_BIN, TEST_PYTHON, _stat_fields, children_of, pid_alive, wait_until
from test_zero_drop import ctl


def status(arbiter) -> dict:
    return json.loads(ctl(arbiter, "--json", "status"))


def zombie_children(pid: int) -> list[int]:
    zombies = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and fields[1] == str(pid) and fields[0] == "Z":
                zombies.append(int(entry))
    return zombies


# --------------------------------------------------------------------------------------------------
# Reaping


def test_orphans_of_the_app_are_reaped_by_the_arbiter_as_subreaper(arbiter):
    arbiter.run(app="orphans:app", workers=1)
    arbiter.wait_ready(1)

    assert arbiter.get("/orphans?n=20", timeout=10).json()["orphaned"] == 20

    wait_until(lambda: status(arbiter)["orphans_reaped"] >= 20, 10, "20 orphans reaped by the arbiter")
    assert zombie_children(arbiter.pid) == []


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare(1)")
def test_arbiter_as_pid_1_leaves_no_zombie_behind(arbiter):
    # A container's entrypoint: PID 1 of a new pid namespace, where every orphan is re-parented to it.
    arbiter.run(app="orphans:app", workers=1, wrapper=["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"])
    inner = wait_until(lambda: children_of(arbiter.pid), 10, "the arbiter under unshare")
    (pid_1,) = inner
    wait_until(lambda: ready_workers_via_ctl(arbiter) == 1, 30, "one ready worker")

    arbiter.get("/orphans?n=20", timeout=10)

    wait_until(lambda: status(arbiter)["orphans_reaped"] >= 20, 10, "20 orphans reaped by PID 1")
    wait_until(lambda: zombie_children(pid_1) == [], 5, "no zombie left under PID 1")
    assert status(arbiter)["pid"] == 1


def ready_workers_via_ctl(arbiter) -> int:
    if not arbiter.control_path.exists():
        return 0
    try:
        return status(arbiter)["ready_workers"]
    except AssertionError:
        return 0


@pytest.mark.parametrize("spawner_args", [pytest.param([], id="exec"), pytest.param(["--preload"], id="preload")])
def test_worker_killed_hard_takes_its_process_group_with_it(arbiter, spawner_args):
    arbiter.run(app="orphans:app", workers=1, extra=spawner_args)
    (worker,) = arbiter.wait_ready(1)
    child = arbiter.get("/child", timeout=10).json()["child"]
    assert pid_alive(child)

    os.kill(worker, signal.SIGKILL)

    wait_until(lambda: not pid_alive(child), 5, f"the killed worker's child {child} to go with it")


# --------------------------------------------------------------------------------------------------
# Spawn failures


def test_bare_python_missing_from_path_exits_2_naming_it(arbiter):
    arbiter.run(python="python3.99")
    code = arbiter.wait_exit(10)
    assert code == 2
    assert "--python python3.99: not found on PATH" in arbiter.output()


def test_check_with_a_missing_interpreter_exits_2_at_once(workdir):
    result = subprocess.run([str(ARBITER_BIN), "check", "--python", "python3.99", "--chdir", str(APPS_DIR), "hello:app"],
                            capture_output=True, text=True, timeout=30, cwd=workdir)
    assert result.returncode == 2
    assert "python3.99" in result.stderr


def test_interpreter_that_cannot_be_executed_fails_the_boot_with_exit_2_and_the_reason(arbiter, workdir):
    broken = workdir / "python"
    broken.write_text("#!/nonexistent/interpreter\n")
    broken.chmod(0o755)
    arbiter.run(python=str(broken), extra=["--boot-timeout", "20"])
    started = time.monotonic()
    code = arbiter.wait_exit(20)
    assert code == 2, arbiter.output()
    assert time.monotonic() - started < 20
    assert "no worker could be started" in arbiter.output()


def test_spawn_failure_after_start_backs_off_the_slot_and_recovers(arbiter, workdir):
    python = workdir / "python"
    python.write_text(f'#!/bin/sh\nexec {TEST_PYTHON} "$@"\n')
    python.chmod(0o755)
    arbiter.run(workers=2, python=str(python))
    workers = arbiter.wait_ready(2)
    python.chmod(0o644)  # the interpreter cannot be executed any more (a botched deploy): EACCES

    os.kill(next(iter(workers)), signal.SIGKILL)

    wait_until(lambda: "could not start" in json.dumps(status(arbiter)["workers"]), 10, "the slot to report the spawn failure")
    assert arbiter.running()
    assert arbiter.try_get_json() is not None, "the other worker keeps serving"
    python.chmod(0o755)
    wait_until(lambda: status(arbiter)["ready_workers"] == 2, 60, "the slot to recover once the interpreter is back")


# --------------------------------------------------------------------------------------------------
# Reload progress


def test_reload_requested_while_starting_runs_once_the_workers_are_ready(arbiter):
    arbiter.run(app="slow_boot:app", workers=1, env={"SLOW_BOOT_SECONDS": "2"})
    wait_until(lambda: "starting 1 worker" in arbiter.output(), 10, "the arbiter to start")
    arbiter.signal(signal.SIGHUP)

    wait_until(lambda: "reload_queued" in arbiter.output() or "requested while starting" in arbiter.output(), 5,
               "the reload to be queued")
    wait_until(lambda: (s := status(arbiter))["generation"] == 1 and s["reload"]["state"] == "done"
               and s["ready_workers"] == 1, 60, "the queued reload to finish")


def test_reload_with_a_crash_looping_slot_fails_at_its_bound_naming_the_slot(arbiter, workdir):
    marker = workdir / "broken"
    arbiter.run(app="flaky_slot:app", workers=2, extra=["--boot-timeout", "5"],
                env={"APP_BREAK_MARKER": str(marker), "APP_FAIL_SLOT": "2"})
    arbiter.wait_ready(2)
    marker.write_text("slot 2 is broken now")
    slot_2 = next(w["pid"] for w in status(arbiter)["workers"] if w["id"] == 2)
    os.kill(slot_2, signal.SIGKILL)
    wait_until(lambda: next(w for w in status(arbiter)["workers"] if w["id"] == 2)["state"] in ("backoff", "crashloop"),
               20, "slot 2 to fail")

    started = time.monotonic()
    result = subprocess.run([str(ARBITER_BIN), "ctl", "--control", str(arbiter.control_path), "reload"],
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 1, result.stdout
    assert "worker 2" in result.stderr and "not finished" in result.stderr
    assert time.monotonic() - started < 40  # the bound: (2 rounds + 1) x 5 s + 5 s
    after = status(arbiter)
    assert after["state"] == "running" and after["reload"]["state"] == "failed"
    assert next(w for w in after["workers"] if w["id"] == 1)["state"] == "ready", "worker 1 keeps serving"
