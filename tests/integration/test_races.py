"""Races between the arbiter's deadlines and the worker's own progress (docs/worker-channel.md,
"Stop deadlines"): a late `ready` never undoes a boot-timeout kill, and the arbiter's SIGKILL never
cuts short a stop the shim was promised."""

import signal
import threading
import time

from conftest import wait_until

GRACEFUL_KILL_MARGIN = 2.0  # WORKER_KILL_MARGIN_MS in supervisor/worker.h


def test_ready_after_the_boot_timeout_fired_is_ignored_and_the_kill_is_a_boot_timeout(arbiter, workdir):
    gate = workdir / "boot-gate"
    arbiter.run(app="boot_gate:app", workers=1, extra=["--boot-timeout", "5", "--timeout", "60"],
                env={"BOOT_GATE": str(gate)})
    wait_until(lambda: "not ready 5.0 s after it started" in arbiter.output(), 30, "the boot timeout to fire")
    gate.touch()  # the app finishes lifespan startup now, inside the 1 s between stack dump and SIGKILL

    code = arbiter.wait_exit(15)

    output = arbiter.output()
    assert "ready arrived after --boot-timeout fired; ignoring it" in output, output
    assert "after not booting in time (--boot-timeout)" in output
    assert "workers ready" not in output  # never counted as serving
    assert code == 3


def test_lifespan_shutdown_runs_until_the_graceful_timeout_and_is_not_killed(arbiter, workdir):
    started = workdir / "shutdown-started"
    arbiter.run(app="slow_shutdown:app", workers=1, extra=["--graceful-timeout", "2"],
                env={"SHUTDOWN_STARTED": str(started)})
    arbiter.wait_ready(1)

    signalled = time.monotonic()
    arbiter.signal(signal.SIGTERM)
    code = arbiter.wait_exit(15)
    elapsed = time.monotonic() - signalled

    output = arbiter.output()
    assert started.exists(), "lifespan shutdown never began"
    assert "Lifespan shutdown did not finish within" in output  # the shim ended it on its own budget
    assert "stopped: exit code 0" in output, output
    assert "killed by signal" not in output, output
    assert code == 0
    assert elapsed < 2 + GRACEFUL_KILL_MARGIN, f"the stop took {elapsed:.2f} s"


def test_a_worker_overrunning_its_stop_budget_is_killed_2_s_after_the_graceful_timeout(arbiter, workdir):
    marker = workdir / "block-started"
    arbiter.run(app="blocking:app", workers=1, extra=["--graceful-timeout", "1", "--timeout", "60"])
    arbiter.wait_ready(1)
    sender = threading.Thread(target=lambda: arbiter.try_get_json(f"/block?s=30&started={marker}", timeout=40))
    sender.start()
    wait_until(marker.exists, 10, "the blocking request to reach its handler")

    signalled = time.monotonic()
    arbiter.signal(signal.SIGTERM)
    code = arbiter.wait_exit(15)
    elapsed = time.monotonic() - signalled
    sender.join(timeout=45)

    output = arbiter.output()
    assert "killed by signal 9 (Killed) after --graceful-timeout" in output, output
    assert 1 + GRACEFUL_KILL_MARGIN - 0.2 <= elapsed <= 1 + GRACEFUL_KILL_MARGIN + 3, f"killed after {elapsed:.2f} s"
    assert code == 0
