"""Runtime control: `arbiter ctl` and the signals an operator sends."""

import json
import signal
import subprocess

from conftest import ARBITER_BIN, wait_until


def ctl(arbiter, *command: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(ARBITER_BIN), "ctl", "--control", str(arbiter.control_path), *command],
                          capture_output=True, text=True, timeout=timeout)


def _ready_worker_pids(arbiter) -> set:
    result = ctl(arbiter, "--json", "status")
    if result.returncode != 0:
        return set()
    status = json.loads(result.stdout)
    return {w["pid"] for w in status["workers"] if w["state"] == "ready"}


def test_ctl_status_json_lists_every_ready_worker_with_its_pid(arbiter):
    arbiter.run(workers=2)
    workers = arbiter.wait_ready(2)

    wait_until(lambda: _ready_worker_pids(arbiter) == workers, 20, f"ctl status to list {workers} as ready")
    status = json.loads(ctl(arbiter, "--json", "status").stdout)

    assert status["pid"] == arbiter.pid
    assert status["state"] == "running"
    assert status["target_workers"] == 2


def test_ctl_scale_changes_the_number_of_workers_both_ways(arbiter):
    arbiter.run(workers=1)
    arbiter.wait_ready(1)

    assert ctl(arbiter, "scale", "3").returncode == 0
    wait_until(lambda: len(arbiter.workers()) == 3, 30, "3 workers after scale 3")
    assert ctl(arbiter, "scale", "-2").returncode == 0
    wait_until(lambda: len(arbiter.workers()) == 1, 30, "1 worker after scale -2")


def test_ctl_with_malformed_command_exits_2_and_the_arbiter_keeps_serving(arbiter):
    arbiter.run(workers=1)
    arbiter.wait_ready(1)

    result = ctl(arbiter, "scale", "lots")

    assert result.returncode == 2
    assert arbiter.try_get_json() is not None


def test_hup_replaces_every_worker_with_a_new_pid(arbiter):
    arbiter.run(workers=2)
    old = arbiter.wait_ready(2)

    arbiter.signal(signal.SIGHUP)

    def all_new():
        now = arbiter.workers()
        return now if len(now) == 2 and not (now & old) else None
    new = wait_until(all_new, 60, f"workers {old} to be replaced after HUP")
    assert arbiter.answering_pids(2) == new


def test_ttin_adds_a_worker_and_ttou_removes_one(arbiter):
    arbiter.run(workers=1)
    arbiter.wait_ready(1)

    arbiter.signal(signal.SIGTTIN)
    wait_until(lambda: len(arbiter.workers()) == 2, 30, "2 workers after TTIN")
    arbiter.signal(signal.SIGTTOU)
    wait_until(lambda: len(arbiter.workers()) == 1, 30, "1 worker after TTOU")
