"""--autoscale MIN:MAX: the worker count follows the load.

The app is tests/apps/sync_driver.py: each request holds its worker's event loop for 20 ms (a sync
driver inside `async def`), so one worker answers at most ~50 requests/s and more workers really
help, even on 2 CPUs. The load is tests/integration/load.py (keep-alive, closed loop, every failure
counted at the client). Waits are on `ctl status` conditions with deadlines; the autoscaler's
--autoscale-idle is shortened so scale-down happens within a test's time.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Optional

import pytest

import httpx

from conftest import ARBITER_BIN, TEST_PYTHON, Arbiter, free_port, wait_until
from load import LoadRun

APP = "sync_driver:app"
QUIET = ["--no-access-log"]


def status(arbiter: Arbiter) -> dict:
    result = subprocess.run([str(ARBITER_BIN), "ctl", "--control", str(arbiter.control_path), "--json", "status"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def ctl(arbiter: Arbiter, *command: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(ARBITER_BIN), "ctl", "--control", str(arbiter.control_path), *command],
                          capture_output=True, text=True, timeout=timeout)


def target(arbiter: Arbiter) -> int:
    return status(arbiter)["target_workers"]


def wait_target(arbiter: Arbiter, predicate, timeout: float, message: str) -> dict:
    def check() -> Optional[dict]:
        current = status(arbiter)
        return current if predicate(current["target_workers"]) and current["ready_workers"] == current["target_workers"] else None
    try:
        return wait_until(check, timeout, message, interval=0.2)
    except AssertionError as failure:
        raise AssertionError(f"{failure}; status autoscale: {status(arbiter)['autoscale']}\n{arbiter.tail(30)}") from None


@pytest.fixture
def loads(workdir):
    runs: list[LoadRun] = []

    def start(arbiter: Arbiter, connections: int, path: str = "/") -> LoadRun:
        run = LoadRun(str(TEST_PYTHON), arbiter.base_url() + path, workdir, connections=connections, seconds=120)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.close()


def assert_no_failed_request(report: dict, arbiter: Arbiter) -> None:
    assert report["failed"] == 0, f"{report['failed']} of {report['total']} failed: {report}\n{arbiter.tail(40)}"


@pytest.mark.parametrize("spawner_args", [pytest.param([], id="exec"), pytest.param(["--preload"], id="preload")])
def test_rising_load_scales_up_then_back_to_min_without_a_failed_request(arbiter, loads, spawner_args):
    """Load from 2 to 12 connections: the count rises above MIN; when the heavy load stops it comes
    back to MIN one worker per --autoscale-idle, while a light load keeps running; no request of
    either load fails. With --preload the new workers are forks of the zygote."""
    arbiter.run(app=APP, workers=1, extra=[*QUIET, *spawner_args, "--autoscale", "1:4", "--autoscale-idle", "1"])
    arbiter.wait_ready(1)
    light = loads(arbiter, connections=1, path="/fast")
    heavy = loads(arbiter, connections=2)
    heavy.wait_answered(20)
    heavy_more = loads(arbiter, connections=10)
    up = wait_target(arbiter, lambda n: n >= 3, 60, "the load to add workers")
    assert up["autoscale"]["decisions"]["up"] >= 1, up["autoscale"]
    assert re.search(r"autoscale 1 -> 2 workers: (event-loop lag|busy|[0-9.]+ connections waiting)", arbiter.output())
    if spawner_args:
        assert up["zygote"]["forks"] >= up["target_workers"], up["zygote"]
    heavy_more.wait_answered(200)
    reports = [heavy_more.stop(), heavy.stop()]
    down = wait_target(arbiter, lambda n: n == 1, 60, "the count to come back to MIN")
    assert down["autoscale"]["last_decision"]["action"] == "down"
    assert down["autoscale"]["last_decision"]["reason"] == "idle"
    light.wait_answered(50)
    reports.append(light.stop())
    for report in reports:
        assert_no_failed_request(report, arbiter)
    output = arbiter.output()
    assert "autoscale 1 -> 2 workers" in output and "autoscale 2 -> 1 workers: low load" in output


def test_autoscale_never_goes_above_max(arbiter, loads):
    """Under a load more workers would help, the count stops at MAX, and the blocked step is logged
    and counted once."""
    arbiter.run(app=APP, workers=1, extra=[*QUIET, "--autoscale", "1:2"])
    arbiter.wait_ready(1)
    load = loads(arbiter, connections=16)
    wait_until(lambda: status(arbiter)["autoscale"]["decisions"]["blocked"] >= 1, 60,
               "the autoscaler to report that it is at MAX", interval=0.2)
    current = status(arbiter)
    assert current["target_workers"] == 2
    assert current["autoscale"]["last_decision"]["reason"] == "max"
    load.wait_answered(100)
    assert target(arbiter) == 2
    assert arbiter.output().count("already at MAX 2") == 1
    assert_no_failed_request(load.stop(), arbiter)


def test_autoscale_never_goes_above_the_memory_ceiling(arbiter, loads):
    """--autoscale-max-memory below what two workers take: the load cannot add one, and the
    decision says why."""
    arbiter.run(app=APP, workers=1, extra=[*QUIET, "--autoscale", "1:4", "--autoscale-max-memory", "30M"])
    arbiter.wait_ready(1)
    load = loads(arbiter, connections=12)
    blocked = wait_until(lambda: (s := status(arbiter))["autoscale"]["decisions"]["blocked"] >= 1 and s, 60,
                         "the memory ceiling to block a scale-up", interval=0.2)
    assert blocked["target_workers"] == 1
    assert blocked["autoscale"]["last_decision"]["reason"] == "memory"
    assert "--autoscale-max-memory" in arbiter.output()
    assert_no_failed_request(load.stop(), arbiter)


def test_autoscale_never_goes_below_min(arbiter):
    """Idle for three times --autoscale-idle: the count stays at MIN."""
    arbiter.run(app=APP, workers=2, extra=[*QUIET, "--autoscale", "2:4", "--autoscale-idle", "0.5"])
    arbiter.wait_ready(2)
    wait_until(lambda: status(arbiter)["autoscale"]["low_for_s"] >= 1.5, 30,
               "the load to have been low for three idle periods", interval=0.2)
    current = status(arbiter)
    assert current["target_workers"] == 2
    assert current["autoscale"]["decisions"]["down"] == 0


def test_start_count_above_min_comes_down_to_min_when_idle(arbiter):
    arbiter.run(app=APP, workers=3, extra=[*QUIET, "--autoscale", "1:3", "--autoscale-idle", "0.5"])
    arbiter.wait_ready(3)
    wait_target(arbiter, lambda n: n == 1, 60, "the idle pool to shrink to MIN")


def test_ctl_autoscale_sets_new_bounds_and_off_freezes_the_count(arbiter):
    arbiter.run(app=APP, workers=1, extra=QUIET)
    arbiter.wait_ready(1)
    assert status(arbiter)["autoscale"]["enabled"] is False
    result = ctl(arbiter, "autoscale", "2:3")
    assert result.returncode == 0, result.stderr
    assert "autoscale 2..3" in result.stdout
    wait_target(arbiter, lambda n: n == 2, 60, "the count to move into the new bounds")
    assert status(arbiter)["autoscale"]["last_decision"]["reason"] == "bounds"
    result = ctl(arbiter, "autoscale", "off")
    assert result.returncode == 0, result.stderr
    assert "autoscale off" in result.stdout
    current = status(arbiter)
    assert current["autoscale"]["enabled"] is False and current["target_workers"] == 2


def test_manual_scale_turns_autoscaling_off_with_a_log_line(arbiter):
    arbiter.run(app=APP, workers=1, extra=[*QUIET, "--autoscale", "1:4"])
    arbiter.wait_ready(1)
    result = ctl(arbiter, "scale", "3")
    assert result.returncode == 0, result.stderr
    current = status(arbiter)
    assert current["autoscale"]["enabled"] is False and current["target_workers"] == 3
    assert "autoscaling off (control command)" in arbiter.output()


def test_autoscale_decisions_are_counted_in_metrics(arbiter, loads):
    port = free_port()
    arbiter.run(app=APP, workers=1, extra=[*QUIET, "--autoscale", "1:2", "--metrics", f"127.0.0.1:{port}"])
    arbiter.wait_ready(1)
    load = loads(arbiter, connections=12)
    wait_target(arbiter, lambda n: n == 2, 60, "a scale-up")
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert "arbiter_autoscale_enabled 1" in text
    assert 'arbiter_autoscale_decisions_total{action="up",reason="' in text
    assert "arbiter_worker_connections{" in text
    assert_no_failed_request(load.stop(), arbiter)


@pytest.mark.parametrize("argv, message", [
    (["--autoscale", "4:2"], "--autoscale: '4:2': MIN is more than MAX"),
    (["--autoscale", "0:2"], "--autoscale: '0:2': MIN must be at least 1"),
    (["--autoscale", "1:200"], "--autoscale 1:200: MAX is more than --max-workers 128"),
    (["--autoscale", "2:4", "-w", "6"], "--workers 6 is outside --autoscale 2:4"),
    (["--autoscale", "two:four"], "--autoscale: 'two:four' is not MIN:MAX"),
    (["--balance", "even", "--reuse-port"], "--balance even needs the shared socket"),
])
def test_bad_autoscale_input_exits_2_naming_the_flag(arbiter, argv, message):
    arbiter.start(["run", "--python", str(TEST_PYTHON), *argv, APP])
    assert arbiter.wait_exit(30) == 2
    assert message in arbiter.output()


def test_ctl_autoscale_with_bad_bounds_exits_2_or_1_with_the_reason(arbiter):
    arbiter.run(app=APP, workers=1, extra=[*QUIET, "--max-workers", "4"])
    arbiter.wait_ready(1)
    result = ctl(arbiter, "autoscale", "3:1")
    assert result.returncode == 2 and "MIN is more than MAX" in result.stderr
    result = ctl(arbiter, "autoscale", "1:8")
    assert result.returncode == 1 and "MAX is more than --max-workers 4" in result.stderr
