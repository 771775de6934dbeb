"""Booting: apps that cannot start make `run` exit 3 with their traceback; slow lifespans are
judged by --boot-timeout, not --timeout; `check` reports the same thing without serving."""

import re

from conftest import APPS_DIR, TEST_PYTHON

BOOT_DEADLINE = 60  # seconds for an arbiter to give up on an app that cannot boot


def test_app_failing_at_import_makes_run_exit_3_with_its_traceback(arbiter):
    arbiter.run(app="crash_on_import:app", workers=2)

    code = arbiter.wait_exit(BOOT_DEADLINE)

    assert code == 3
    assert "Traceback" in arbiter.output()
    assert "boom at import: crash_on_import" in arbiter.output()


def test_app_failing_in_lifespan_startup_makes_run_exit_3_with_its_traceback(arbiter):
    arbiter.run(app="lifespan_fail:app", workers=2)

    code = arbiter.wait_exit(BOOT_DEADLINE)

    assert code == 3
    assert "boom in lifespan: lifespan_fail" in arbiter.output()


def test_lifespan_longer_than_timeout_but_shorter_than_boot_timeout_boots(arbiter):
    arbiter.run(app="slow_boot:app", workers=1, env={"SLOW_BOOT_SECONDS": "3"},
                extra=["--timeout", "1", "--boot-timeout", "10"])

    arbiter.wait_ready(1, timeout=20)

    assert arbiter.try_get_json()["boot_seconds"] == 3.0
    assert arbiter.running()


def _check(arbiter, app: str) -> int:
    arbiter.start(["check", "--python", str(TEST_PYTHON), "--chdir", str(APPS_DIR), app])
    return arbiter.wait_exit(BOOT_DEADLINE)


def test_check_of_a_bootable_app_exits_0(arbiter):
    assert _check(arbiter, "hello:app") == 0


def test_check_of_an_app_failing_at_import_exits_3_with_its_traceback(arbiter):
    code = _check(arbiter, "crash_on_import:app")

    assert code == 3
    assert re.search(r"Traceback|RuntimeError", arbiter.output())
    assert "boom at import: crash_on_import" in arbiter.output()
