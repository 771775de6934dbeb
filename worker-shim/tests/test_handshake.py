"""The handshake (docs/worker-channel.md, "The handshake"): hello first, and exit 4 on another protocol."""

from __future__ import annotations

import signal
import subprocess

from harness import PYTHON, SHIM_DIR, Worker, tcp_listener


def stop(worker: Worker) -> None:
    worker.signal(signal.SIGTERM)
    assert worker.finish()[0] == 0


def installed_versions() -> tuple[str, str]:
    """(arbiter_worker, uvicorn) versions as the worker's interpreter sees them."""
    out = subprocess.run(
        [PYTHON, "-c", "import arbiter_worker, uvicorn; print(arbiter_worker.__version__, uvicorn.__version__)"],
        env={"PYTHONPATH": str(SHIM_DIR)}, capture_output=True, text=True, check=True, timeout=30,
    ).stdout.split()
    return out[0], out[1]


def test_hello_is_the_first_line_with_protocol_pid_and_versions() -> None:
    worker = Worker("shim_hello:app", [tcp_listener()])
    worker.wait_for("ready")
    shim, uvicorn = installed_versions()

    assert worker.messages[0] == {"type": "hello", "protocol": 1, "pid": worker.pid, "shim": shim, "uvicorn": uvicorn}
    assert worker.count("hello") == 1
    stop(worker)


def test_arbiter_speaking_another_protocol_makes_the_shim_exit_4_naming_both_versions_and_the_fix() -> None:
    worker = Worker("shim_hello:app", [tcp_listener()], env={"ARBITER_PROTOCOL": "2"})

    worker.process.wait(timeout=10)
    worker.pump(0.2)
    code, _, err = worker.finish()

    assert code == 4
    assert "the arbiter speaks worker-channel protocol '2'" in err and "speaks 1" in err
    assert "restart the arbiter" in err and "reinstall" in err
    assert worker.messages == []  # nothing, not even a hello: the arbiter would not understand it


def test_without_arbiter_protocol_the_shim_still_says_hello_and_serves() -> None:
    worker = Worker("shim_hello:app", [tcp_listener()], env={"ARBITER_PROTOCOL": ""})

    worker.wait_for("ready")

    assert worker.messages[0]["type"] == "hello" and worker.messages[0]["protocol"] == 1
    stop(worker)
