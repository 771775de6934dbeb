"""Booting: apps that cannot start make `run` exit 3 with their traceback; slow lifespans are
judged by --boot-timeout, not --timeout; `check` reports the same thing without serving; a worker
shim from another install (another channel protocol) makes `run` exit 2 naming both versions."""

import json
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


# A stand-in for a worker shim from another install: it greets with FIRST_LINE, then claims to be
# ready, and waits for the channel to close (the arbiter kills it before that).
STAND_IN_SHIM = """\
import os, socket
channel = socket.socket(fileno=int(os.environ["ARBITER_CHANNEL_FD"]))
channel.sendall(FIRST_LINE + b'{"type":"ready","pid":%d}\\n' % os.getpid())
channel.recv(1)
"""


def stand_in_shim(workdir, first_line: dict) -> dict:
    """The environment that makes the arbiter run the stand-in instead of arbiter_worker."""
    package = workdir / "other-install" / "arbiter_worker"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    line = json.dumps(first_line).encode() + b"\n"
    (package / "__main__.py").write_text(f"FIRST_LINE = {line!r}\n" + STAND_IN_SHIM)
    return {"ARBITER_SHIM_PATH": str(package.parent)}


def test_shim_speaking_another_channel_protocol_makes_run_exit_2_naming_both_versions(arbiter, workdir):
    env = stand_in_shim(workdir, {"type": "hello", "protocol": 999, "pid": 0, "shim": "9.9.9", "uvicorn": None})
    arbiter.run(workers=2, env=env)

    code = arbiter.wait_exit(BOOT_DEADLINE)

    assert code == 2
    output = arbiter.output()
    assert "its worker shim (arbiter_worker 9.9.9) speaks worker-channel protocol 999" in output
    assert "speaks protocol 1" in output and "restart the arbiter" in output
    assert "after its shim spoke another channel protocol" in output


def test_shim_older_than_the_handshake_makes_run_exit_2(arbiter, workdir):
    env = stand_in_shim(workdir, {"type": "heartbeat", "requests": 0, "in_flight": 0})
    arbiter.run(workers=1, env=env)

    code = arbiter.wait_exit(BOOT_DEADLINE)

    assert code == 2
    assert "its first channel message is 'heartbeat', not a hello" in arbiter.output()
