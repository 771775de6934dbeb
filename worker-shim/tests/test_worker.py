"""The shim's contract (docs/worker-channel.md), checked against a real `python -m arbiter_worker`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from harness import PYTHON, Worker, tcp_listener, unix_listener, url_of


def stop(worker: Worker) -> tuple[int, str, str]:
    if worker.process.poll() is None:
        worker.signal(signal.SIGTERM)
    return worker.finish()


def test_heartbeats_start_during_lifespan_startup_and_ready_follows_it() -> None:
    listener = tcp_listener()
    worker = Worker("shim_hello:app", [listener], env={"SHIM_BOOT_SECONDS": "1"})
    worker.wait_for("ready")
    first_ready = next(i for i, m in enumerate(worker.messages) if m["type"] == "ready")
    assert worker.count("heartbeat") >= 3 and worker.messages[1]["type"] == "heartbeat"
    assert first_ready >= 3  # heartbeats kept coming while lifespan startup slept
    assert worker.messages[first_ready] == {"type": "ready", "pid": worker.pid}
    assert httpx.get(url_of(listener) + "/").json() == {"pid": worker.pid, "started": True}
    deadline = time.monotonic() + 5
    while worker.wait_for("heartbeat", after=len(worker.messages)) != {"type": "heartbeat", "requests": 1, "in_flight": 0}:
        assert time.monotonic() < deadline, worker.messages[-3:]
    assert stop(worker)[0] == 0


def test_serves_inherited_ipv4_ipv6_and_unix_listeners_with_their_real_family(tmp_path: Path) -> None:
    listeners = [tcp_listener("127.0.0.1"), tcp_listener("::1"), unix_listener(str(tmp_path / "app.sock"))]
    worker = Worker("shim_hello:app", listeners)
    worker.wait_for("ready")
    for listener in listeners[:2]:
        assert httpx.get(url_of(listener) + "/").json()["pid"] == worker.pid
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(tmp_path / "app.sock"))) as client:
        assert client.get("http://app/").json()["pid"] == worker.pid
    code, _, err = stop(worker)
    assert code == 0
    assert "Serving on http://[::1]:" in err and f"Serving on unix:{tmp_path}/app.sock" in err
    # The arbiter's copies stay open: a worker's stop must not close a shared listener.
    assert listeners[0].getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1


def listen_backlog(sock: socket.socket) -> int:
    """A TCP listener's backlog: tcpi_sacked of TCP_INFO (what `ss -l` shows as Send-Q)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 32)
    return int.from_bytes(info[28:32], "little")


def test_the_arbiters_backlog_survives_uvicorns_own_listen() -> None:
    """With --balance kernel, uvicorn's create_server listens again on the adopted socket with its own
    backlog; the shim passes the arbiter's, so --backlog 100 stays 100 (uvicorn's default is 2048)."""
    listener = tcp_listener()
    listener.listen(100)
    assert listen_backlog(listener) == 100
    worker = Worker("shim_hello:app", [listener], args=["--backlog", "100"], env={"ARBITER_BALANCE": "kernel"})
    worker.wait_for("ready")
    assert httpx.get(url_of(listener) + "/").json()["pid"] == worker.pid
    assert listen_backlog(listener) == 100
    assert stop(worker)[0] == 0


def test_in_flight_heartbeat_counts_running_requests() -> None:
    listener = tcp_listener()
    worker = Worker("shim_hello:app", [listener])
    worker.wait_for("ready")
    with httpx.Client() as client:
        import threading

        slow = threading.Thread(target=lambda: client.get(url_of(listener) + "/slow?s=1.5", timeout=10))
        slow.start()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            beat = worker.wait_for("heartbeat", after=len(worker.messages))
            if beat["in_flight"] == 1:
                break
        else:
            pytest.fail("no heartbeat with in_flight=1")
        slow.join(10)
    assert stop(worker)[0] == 0


def test_sigterm_finishes_the_in_flight_request_then_exits_0() -> None:
    listener = tcp_listener()
    worker = Worker("shim_hello:app", [listener])
    worker.wait_for("ready")
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        slow = pool.submit(httpx.get, url_of(listener) + "/slow?s=1", timeout=10)
        deadline = time.monotonic() + 5
        while worker.wait_for("heartbeat", after=len(worker.messages))["in_flight"] != 1:
            assert time.monotonic() < deadline
        worker.signal(signal.SIGTERM)
        response = slow.result(timeout=10)
    assert response.status_code == 200 and response.headers["connection"] == "close"
    code, _, err = worker.finish()
    assert code == 0, err
    assert "Application shutdown complete" in err


def test_sigint_and_sigquit_stop_quickly_with_exit_0() -> None:
    for signum in (signal.SIGINT, signal.SIGQUIT):
        listener = tcp_listener()
        worker = Worker("shim_hello:app", [listener], args=["--graceful-timeout", "20"])
        worker.wait_for("ready")
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(lambda: httpx.get(url_of(listener) + "/slow?s=30", timeout=40))
            deadline = time.monotonic() + 5
            while worker.wait_for("heartbeat", after=len(worker.messages))["in_flight"] != 1:
                assert time.monotonic() < deadline
            began = time.monotonic()
            worker.signal(signum)
            code, _, err = worker.finish(timeout=10)
        assert code == 0, err
        assert time.monotonic() - began < 5


def test_sigusr1_dumps_the_stack_of_a_blocked_event_loop() -> None:
    listener = tcp_listener()
    worker = Worker("shim_hello:app", [listener])
    worker.wait_for("ready")
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        blocked = pool.submit(httpx.get, url_of(listener) + "/block?s=2", timeout=10)
        # The loop is blocked once heartbeats stop: wait for a gap longer than 3 intervals.
        deadline = time.monotonic() + 5
        while True:
            seen = worker.count("heartbeat")
            worker.pump(0.7)
            if worker.count("heartbeat") == seen:
                break
            assert time.monotonic() < deadline, "heartbeats never stopped"
        worker.signal(signal.SIGUSR1)
        assert blocked.result(timeout=10).status_code == 200
    worker.wait_for("heartbeat", after=len(worker.messages))  # still alive and serving
    code, _, err = stop(worker)
    assert code == 0
    assert "block_the_event_loop" in err and "shim_hello.py" in err


def test_import_error_exits_3_with_the_full_traceback() -> None:
    worker = Worker("shim_import_error:app", [tcp_listener()])
    code, _, err = worker.finish()
    assert code == 3
    assert "Traceback (most recent call last)" in err
    assert "read_settings" in err and "RuntimeError: boom at import: shim_import_error" in err
    assert worker.count("ready") == 0


def test_missing_module_or_attribute_exits_3_with_a_clear_message() -> None:
    for app, expected in (("no_such_module:app", 'Could not import module "no_such_module"'),
                          ("shim_hello:nope", 'Attribute "nope" not found')):
        worker = Worker(app, [tcp_listener()])
        code, _, err = worker.finish()
        assert code == 3 and expected in err, err


def test_lifespan_startup_failure_exits_3_with_the_traceback() -> None:
    worker = Worker("shim_lifespan_fail:app", [tcp_listener()], args=["--lifespan", "on"])
    code, _, err = worker.finish()
    assert code == 3, err
    assert "connect_to_database" in err and "RuntimeError: boom in lifespan: shim_lifespan_fail" in err
    worker.pump(0)
    assert worker.count("ready") == 0


def test_interpreter_without_uvicorn_exits_4_naming_the_interpreter_and_the_fix(tmp_path: Path) -> None:
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True, timeout=60)
    bare_python = str(tmp_path / "bare" / "bin" / "python")
    worker = Worker("shim_hello:app", [tcp_listener()], python=bare_python)
    code, _, err = worker.finish()
    assert code == 4
    assert f"{bare_python} -m pip install 'uvicorn[standard]'" in err


def test_channel_eof_makes_the_worker_exit_at_once() -> None:
    worker = Worker("shim_hello:app", [tcp_listener()])
    worker.wait_for("ready")
    worker.channel.close()
    code, _, err = worker.finish(timeout=5)
    assert code == 1 and "closed the channel" in err


def test_worker_whose_arbiter_is_already_gone_exits_at_once() -> None:
    worker = Worker("shim_hello:app", [tcp_listener()], env={"ARBITER_PID": "1"})
    code, _, err = worker.finish(timeout=5)
    assert code == 1 and "is gone" in err


def test_a_log_file_sent_over_the_channel_becomes_stdout_and_stderr(tmp_path: Path) -> None:
    listener = tcp_listener()
    worker = Worker("shim_hello:app", [listener])
    worker.wait_for("ready")
    log_file = tmp_path / "rotated.log"
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        socket.send_fds(worker.channel, [b'{"type":"log_file"}\n'], [fd])
    finally:
        os.close(fd)

    def access_line_in_the_file() -> bool:
        with httpx.Client() as client:
            client.get(url_of(listener) + "/")
        return '"GET / HTTP/1.1" 200' in log_file.read_text()
    deadline = time.monotonic() + 10
    while not access_line_in_the_file():
        assert time.monotonic() < deadline, "the worker never wrote to the file it was handed"
        worker.pump(0.05)
    assert stop(worker)[0] == 0


def test_max_requests_sends_retire_once_and_keeps_serving() -> None:
    listener = tcp_listener()
    worker = Worker("shim_hello:app", [listener], args=["--max-requests", "3"])
    worker.wait_for("ready")
    with httpx.Client() as client:
        for _ in range(3):
            client.get(url_of(listener) + "/")
        worker.wait_for("retire")
        for _ in range(3):
            assert client.get(url_of(listener) + "/").status_code == 200
    worker.pump(0.5)
    assert worker.count("retire") == 1
    assert worker.messages[[m["type"] for m in worker.messages].index("retire")] == {
        "type": "retire", "reason": "max-requests"}
    assert stop(worker)[0] == 0


def test_json_log_format_writes_one_object_per_line() -> None:
    listener = tcp_listener()
    worker = Worker("shim_hello:app", [listener], log_format="json", env={"ARBITER_WORKER_ID": "7"})
    worker.wait_for("ready")
    httpx.get(url_of(listener) + "/")
    code, _, err = stop(worker)
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert lines and all(set(line) >= {"ts", "level", "logger", "worker", "pid", "message"} for line in lines)
    assert {line["worker"] for line in lines} == {"7"} and {line["pid"] for line in lines} == {worker.pid}
    assert any(line["logger"] == "uvicorn.access" for line in lines)


def test_text_logs_carry_the_worker_prefix_and_no_access_log_silences_access() -> None:
    listener = tcp_listener()
    worker = Worker("shim_hello:app", [listener], args=["--no-access-log"])
    worker.wait_for("ready")
    httpx.get(url_of(listener) + "/")
    code, _, err = stop(worker)
    lines = [line for line in err.splitlines() if line.strip()]
    assert all(line.startswith(f"[worker 1 pid {worker.pid}] ") for line in lines), lines
    assert not any('"GET / HTTP/1.1"' in line for line in lines)


def test_bad_listener_fd_is_a_usage_error() -> None:
    not_listening = socket.socket()
    worker = Worker("shim_hello:app", [not_listening])
    code, _, err = worker.finish()
    assert code == 2 and "not listening" in err


def test_factory_option_calls_the_app_factory() -> None:
    listener = tcp_listener()
    worker = Worker("shim_hello:create_app", [listener], args=["--factory"])
    worker.wait_for("ready")
    assert httpx.get(url_of(listener) + "/").json()["pid"] == worker.pid
    code, _, err = stop(worker)
    assert code == 0 and "factory detected" not in err


def test_sigterm_while_the_worker_is_starting_is_a_clean_stop() -> None:
    worker = Worker("shim_hello:app", [tcp_listener()], env={"SHIM_BOOT_SECONDS": "30"})
    worker.wait_for("heartbeat")  # the loop runs: lifespan startup is sleeping
    worker.signal(signal.SIGTERM)
    code, _, err = worker.finish(timeout=10)
    assert code == 0, err
    assert worker.count("ready") == 0
