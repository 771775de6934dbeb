"""The control socket and `arbiter ctl` end to end, with real uvicorn workers (issue 3).

Every command as an operator runs it, who may run what, where the socket lives and how it is
protected, and the bad input that must never hurt the daemon: after each, the arbiter still serves
HTTP. The protocol itself is documented in supervisor/control.h; tests/unit/test_control.c covers the
parser and the permission decisions without a daemon.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterable, Optional

import pytest

from conftest import APPS_DIR, ARBITER_BIN, TEST_PYTHON, Arbiter, free_port, pid_alive, wait_until

NOBODY = 65534
CONTROL_LINE_MAX = 8192  # supervisor/control.h
CONTROL_MAX_CLIENTS = 256
CONTROL_FIRST_REQUEST_S = 1.0  # a new connection's time to send a complete request
CONTROL_IDLE_S = 10.0  # between requests, once one was answered
VALID_COMMANDS = "status|scale|reload|recycle|stop|upgrade|health"


# --------------------------------------------------------------------------------------------------
# Helpers


def ctl(arbiter: Arbiter, *command: str, timeout: float = 90, as_user: Iterable[str] = (),
        control: Optional[Path] = None, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    """`arbiter ctl COMMAND` against this arbiter's control socket (as_user: a setpriv prefix)."""
    path = control or arbiter.control_path
    argv = [*as_user, str(ARBITER_BIN), "ctl", "--control", str(path), *command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)


def status(arbiter: Arbiter) -> dict:
    result = ctl(arbiter, "--json", "status", timeout=10)
    assert result.returncode == 0, f"ctl status failed: {result.stderr}"
    return json.loads(result.stdout)


def slots(status_reply: dict) -> dict[int, dict]:
    """The worker each slot runs (not the draining ones a replacement left behind), by id."""
    return {w["id"]: w for w in status_reply["workers"] if w["state"] != "draining"}


def assert_serving(arbiter: Arbiter) -> None:
    """The arbiter is alive, answers HTTP, and answers on its control socket."""
    assert arbiter.running(), f"the arbiter exited ({arbiter.proc.returncode}):\n{arbiter.tail()}"
    assert wait_until(arbiter.try_get_json, 10, "an HTTP answer"), "no HTTP answer"
    assert status(arbiter)["state"] == "running"


def as_nobody(*groups: int) -> list[str]:
    group_flags = [f"--groups={','.join(map(str, groups))}"] if groups else ["--clear-groups"]
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", *group_flags]


def connect(path: Path, timeout: float = 10.0) -> socket.socket:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(str(path))  # blocking: a full backlog waits for the arbiter to accept, it is not an error
    client.settimeout(timeout)
    return client


def read_replies(client: socket.socket, timeout: float = 10.0) -> tuple[list[dict], bool]:
    """Reads reply lines until the arbiter closes the connection or timeout passes.
    Returns the replies and whether the connection was closed by the arbiter."""
    deadline = time.monotonic() + timeout
    data = b""
    closed = False
    while time.monotonic() < deadline:
        client.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = client.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        data += chunk
    return [json.loads(line) for line in data.splitlines() if line.strip()], closed


def exchange(path: Path, payload: bytes, replies: int = 1, timeout: float = 10.0) -> list[dict]:
    """Sends payload on a fresh connection and returns the first `replies` reply lines."""
    with connect(path) as client:
        client.sendall(payload)
        deadline = time.monotonic() + timeout
        data = b""
        while data.count(b"\n") < replies:
            client.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = client.recv(65536)
            if not chunk:
                break
            data += chunk
    return [json.loads(line) for line in data.splitlines()[:replies]]


def error_code(reply: dict) -> Optional[str]:
    assert reply.get("ok") is False, f"expected an error reply, got {reply}"
    assert set(reply["error"]) == {"code", "message"}, reply
    assert reply["error"]["message"], reply
    return reply["error"]["code"]


@pytest.fixture
def more_arbiters():
    """Makes further Arbiters (each in its own directory); all killed at teardown."""
    made: list[tuple[Arbiter, Path]] = []

    def make() -> Arbiter:
        directory = Path(tempfile.mkdtemp(prefix="arbiter-it-", dir="/tmp"))
        instance = Arbiter(directory)
        made.append((instance, directory))
        return instance

    yield make
    for instance, directory in made:
        instance.kill_everything()
        if instance.proc is not None:
            print(f"--- {' '.join(instance.argv)}\n--- exit {instance.proc.returncode}; output:\n{instance.tail(80)}")
        shutil.rmtree(directory, ignore_errors=True)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run ctl as another uid")


# --------------------------------------------------------------------------------------------------
# status


def test_status_table_has_a_summary_line_a_header_and_a_row_per_worker(arbiter):
    arbiter.run(workers=2)
    pids = arbiter.wait_ready(2)

    result = ctl(arbiter, "status")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.match(rf"^arbiter \(pid {arbiter.pid}\) running: 2/2 workers ready, generation 0, up \d+s, 0 reloads$",
                    lines[0]), lines[0]
    assert lines[1].split() == ["ID", "PID", "STATE", "GEN", "UPTIME", "REQUESTS", "RESTARTS", "PSS", "RSS",
                                "LAST", "EXIT"]
    rows = [line.split() for line in lines[2:]]
    assert sorted(int(row[0]) for row in rows) == [1, 2]
    assert {int(row[1]) for row in rows} == pids
    assert {row[2] for row in rows} == {"ready"}
    assert {row[3] for row in rows} == {"0"}


def test_status_json_has_the_documented_fields_for_the_arbiter_and_each_worker(arbiter):
    arbiter.run(workers=2)
    pids = arbiter.wait_ready(2)

    reply = status(arbiter)

    assert reply["ok"] is True
    assert reply["pid"] == arbiter.pid
    assert reply["state"] == "running"
    assert reply["target_workers"] == 2
    assert reply["ready_workers"] == 2
    assert reply["generation"] == 0
    assert sorted(w["id"] for w in reply["workers"]) == [1, 2]
    assert {w["pid"] for w in reply["workers"]} == pids
    for worker in reply["workers"]:
        assert worker["state"] == "ready"
        assert worker["generation"] == 0
        assert isinstance(worker["uptime_s"], (int, float)) and worker["uptime_s"] >= 0
        assert worker["restarts"] == 0
        assert isinstance(worker["last_exit"], str)


def test_status_shows_the_restart_and_last_exit_of_a_killed_worker(arbiter):
    arbiter.run(workers=2)
    arbiter.wait_ready(2)
    victim = slots(status(arbiter))[1]["pid"]

    os.kill(victim, signal.SIGKILL)

    def restarted():
        worker = slots(status(arbiter)).get(1)
        return worker if worker and worker["state"] == "ready" and worker["pid"] != victim else None
    worker = wait_until(restarted, 60, "worker 1 to be restarted")
    assert worker["restarts"] == 1
    assert "signal 9" in worker["last_exit"], worker["last_exit"]
    assert slots(status(arbiter))[2]["restarts"] == 0


# --------------------------------------------------------------------------------------------------
# scale


def test_scale_absolute_returns_when_exactly_that_many_are_ready(arbiter):
    arbiter.run(workers=2)
    arbiter.wait_ready(2)

    result = ctl(arbiter, "scale", "4")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "4 workers ready"
    reply = status(arbiter)
    assert reply["target_workers"] == 4
    assert [w["state"] for w in reply["workers"]] == ["ready"] * 4
    assert len(arbiter.workers()) == 4


def test_scale_down_by_delta_returns_when_the_removed_workers_have_exited(arbiter):
    arbiter.run(workers=4)
    arbiter.wait_ready(4)

    result = ctl(arbiter, "scale", "-2")

    assert result.returncode == 0, result.stderr
    reply = status(arbiter)
    assert reply["target_workers"] == 2
    assert [w["state"] for w in reply["workers"]] == ["ready"] * 2
    assert len(arbiter.workers()) == 2


def test_scale_up_by_delta_adds_to_the_current_count(arbiter):
    arbiter.run(workers=2)
    arbiter.wait_ready(2)

    result = ctl(arbiter, "scale", "+1")

    assert result.returncode == 0, result.stderr
    reply = status(arbiter)
    assert reply["target_workers"] == 3
    assert [w["state"] for w in reply["workers"]] == ["ready"] * 3


def test_scale_4_then_minus_2_then_plus_1_ends_with_3_ready(arbiter):
    arbiter.run(workers=1)
    arbiter.wait_ready(1)

    for command, expected in (("4", 4), ("-2", 2), ("+1", 3)):
        result = ctl(arbiter, "scale", command)
        assert result.returncode == 0, f"scale {command}: {result.stderr}"
        reply = status(arbiter)
        states = [w["state"] for w in reply["workers"]]
        assert states == ["ready"] * expected, f"after scale {command}: {states}"
    assert_serving(arbiter)


def test_scale_to_zero_is_refused_with_the_reason_and_changes_nothing(arbiter):
    arbiter.run(workers=2)
    arbiter.wait_ready(2)

    result = ctl(arbiter, "scale", "0")

    assert result.returncode != 0
    assert "out_of_range" in result.stderr and "at least 1" in result.stderr, result.stderr
    assert status(arbiter)["target_workers"] == 2
    assert_serving(arbiter)


def test_scale_below_one_by_delta_is_refused(arbiter):
    arbiter.run(workers=2)
    arbiter.wait_ready(2)

    result = ctl(arbiter, "scale", "-5")

    assert result.returncode != 0
    assert "out_of_range" in result.stderr, result.stderr
    assert status(arbiter)["target_workers"] == 2
    assert_serving(arbiter)


def test_scale_beyond_max_workers_is_refused_with_the_limit(arbiter):
    arbiter.run(workers=2, extra=["--max-workers", "4"])
    arbiter.wait_ready(2)

    absolute = ctl(arbiter, "scale", "5")
    relative = ctl(arbiter, "scale", "+3")

    assert absolute.returncode != 0 and relative.returncode != 0
    for result in (absolute, relative):
        assert "out_of_range" in result.stderr and "--max-workers" in result.stderr, result.stderr
        assert "1 to 4" in result.stderr, result.stderr
    assert status(arbiter)["target_workers"] == 2
    assert_serving(arbiter)


def test_scale_by_the_largest_delta_is_refused_naming_the_range_not_a_wrapped_count(arbiter):
    arbiter.run(workers=2)
    arbiter.wait_ready(2)

    result = ctl(arbiter, "scale", "+9223372036854775807")

    assert result.returncode == 1
    assert "out_of_range" in result.stderr and "from -1024 to +1024" in result.stderr, result.stderr
    assert "-9223372036854775808" not in result.stderr, result.stderr
    assert status(arbiter)["target_workers"] == 2
    assert_serving(arbiter)


def test_scale_to_max_workers_is_allowed(arbiter):
    arbiter.run(workers=2, extra=["--max-workers", "3"])
    arbiter.wait_ready(2)

    result = ctl(arbiter, "scale", "3")

    assert result.returncode == 0, result.stderr
    assert status(arbiter)["ready_workers"] == 3


def test_scale_no_wait_returns_before_the_workers_are_ready(arbiter):
    arbiter.run(workers=1)
    arbiter.wait_ready(1)

    result = ctl(arbiter, "--no-wait", "scale", "3")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3 workers requested"
    wait_until(lambda: status(arbiter)["ready_workers"] == 3, 60, "3 ready workers after scale --no-wait")


# --------------------------------------------------------------------------------------------------
# reload and recycle


def test_reload_returns_once_every_worker_was_replaced_by_generation_1_and_the_old_ones_exited(arbiter):
    arbiter.run(workers=2)
    old = arbiter.wait_ready(2)

    result = ctl(arbiter, "reload")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "reloaded: generation 1"
    reply = status(arbiter)
    assert reply["generation"] == 1
    assert sorted(w["id"] for w in reply["workers"]) == [1, 2], reply["workers"]
    assert [w["state"] for w in reply["workers"]] == ["ready"] * 2
    assert {w["generation"] for w in reply["workers"]} == {1}
    assert not {w["pid"] for w in reply["workers"]} & old
    assert not [pid for pid in old if pid_alive(pid)], "the old generation should have exited (ExecReload= semantics)"
    assert arbiter.answering_pids(2) == {w["pid"] for w in reply["workers"]}


def test_reload_of_an_app_broken_after_start_fails_and_the_old_workers_keep_serving(arbiter, workdir):
    marker = workdir / "broken"
    arbiter.run(app="fails_when_marked:app", workers=2, extra=["--env", f"APP_BREAK_MARKER={marker}"])
    old = arbiter.wait_ready(2)
    marker.write_text("a bad deploy\n")

    result = ctl(arbiter, "reload", "--timeout", "60")

    assert result.returncode != 0
    assert "(failed)" in result.stderr and "old workers keep serving" in result.stderr, result.stderr
    current = slots(status(arbiter))
    assert {w["pid"] for w in current.values()} == old
    assert all(w["state"] == "ready" for w in current.values()), current
    assert arbiter.answering_pids(2) == old
    assert "boom at import" in arbiter.output()


def test_reload_after_a_failed_reload_succeeds_once_the_app_is_fixed(arbiter, workdir):
    marker = workdir / "broken"
    arbiter.run(app="fails_when_marked:app", workers=2, extra=["--env", f"APP_BREAK_MARKER={marker}"])
    old = arbiter.wait_ready(2)
    marker.write_text("a bad deploy\n")
    assert ctl(arbiter, "reload", "--timeout", "60").returncode != 0
    marker.unlink()

    result = ctl(arbiter, "reload", "--timeout", "60")

    assert result.returncode == 0, result.stderr
    current = slots(status(arbiter))
    assert not {w["pid"] for w in current.values()} & old


def test_recycle_replaces_only_that_worker(arbiter):
    arbiter.run(workers=2)
    arbiter.wait_ready(2)
    before = slots(status(arbiter))

    result = ctl(arbiter, "recycle", "1")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "worker 1 recycled"
    after = slots(status(arbiter))
    assert after[1]["pid"] != before[1]["pid"]
    assert after[1]["state"] == "ready"
    assert after[2]["pid"] == before[2]["pid"]
    assert arbiter.answering_pids(2) == {after[1]["pid"], after[2]["pid"]}


def test_recycle_of_an_unknown_id_is_refused_as_no_such_worker(arbiter):
    arbiter.run(workers=2)
    pids = arbiter.wait_ready(2)

    result = ctl(arbiter, "recycle", "9")

    assert result.returncode != 0
    assert "no_such_worker" in result.stderr, result.stderr
    assert {w["pid"] for w in slots(status(arbiter)).values()} == pids


# --------------------------------------------------------------------------------------------------
# stop


def _stop_with_ctl(arbiter: Arbiter, *flags: str) -> tuple[subprocess.Popen, int]:
    """Runs `ctl stop FLAGS` and reaps the arbiter meanwhile (ctl waits for its pid to be gone, and
    a dead child of ours stays a zombie, so 'gone', until we reap it)."""
    process = subprocess.Popen([str(ARBITER_BIN), "ctl", "--control", str(arbiter.control_path), "stop", *flags],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    code = arbiter.wait_exit(60)
    process.wait(timeout=30)
    return process, code


def test_stop_returns_after_the_arbiter_exited_0_and_its_workers_are_gone(arbiter):
    arbiter.run(workers=2)
    workers = arbiter.wait_ready(2)

    process, code = _stop_with_ctl(arbiter)

    assert process.returncode == 0, process.stderr.read()
    assert process.stdout.read().strip() == "stopped"
    assert code == 0
    assert not [pid for pid in workers if pid_alive(pid)]
    assert not arbiter.control_path.exists()


def test_stop_quick_returns_after_the_arbiter_exited_0(arbiter):
    arbiter.run(workers=2)
    workers = arbiter.wait_ready(2)

    process, code = _stop_with_ctl(arbiter, "--quick")

    assert process.returncode == 0, process.stderr.read()
    assert code == 0
    assert not [pid for pid in workers if pid_alive(pid)]


def test_graceful_stop_lets_an_in_flight_request_finish(arbiter, workdir):
    arbiter.run(workers=1)
    arbiter.wait_ready(1)
    started = workdir / "started"
    outcome: dict = {}

    def slow_request():
        try:
            outcome["response"] = arbiter.get(f"/slow?s=1.5&started={started}", timeout=30)
        except Exception as error:  # noqa: BLE001  (reported by the assertion below)
            outcome["error"] = error
    thread = threading.Thread(target=slow_request)
    thread.start()
    wait_until(started.exists, 20, "the slow request to be in its handler")

    process, code = _stop_with_ctl(arbiter)
    thread.join(30)

    assert process.returncode == 0 and code == 0
    assert "response" in outcome, f"the in-flight request failed: {outcome.get('error')}"
    assert outcome["response"].status_code == 200


# --------------------------------------------------------------------------------------------------
# health: what a container HEALTHCHECK or a Kubernetes exec probe runs


def test_health_exits_0_with_the_ready_count_while_serving(arbiter):
    arbiter.run(workers=2)
    arbiter.wait_ready(2)

    result = ctl(arbiter, "health", timeout=10)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok: 2/2 workers ready"
    reply = json.loads(ctl(arbiter, "--json", "health", timeout=10).stdout)
    assert reply == {"ok": True, "state": "running", "reason": "ok: 2/2 workers ready",
                     "ready_workers": 2, "target_workers": 2, "min_ready": 1}


def test_health_exits_1_with_the_reason_while_fewer_than_min_ready_workers_are_ready(arbiter):
    arbiter.run(workers=1, extra=["--min-ready", "2"])
    arbiter.wait_ready(1)

    result = ctl(arbiter, "health", timeout=10)

    assert result.returncode == 1
    assert "1/1 workers ready, fewer than --min-ready 2 (unhealthy)" in result.stderr, result.stderr


def test_health_all_exits_1_until_every_target_worker_is_ready(arbiter):
    arbiter.run(app="slow_boot:app", workers=1, env={"SLOW_BOOT_SECONDS": "4"})
    arbiter.wait_ready(1, timeout=60)
    assert ctl(arbiter, "scale", "2", "--no-wait", timeout=10).returncode == 0

    during_boot_all, during_boot = ctl(arbiter, "health", "--all", timeout=10), ctl(arbiter, "health", timeout=10)

    assert during_boot_all.returncode == 1 and "1/2 workers ready, not all of them" in during_boot_all.stderr
    assert during_boot.returncode == 0, "one ready worker satisfies --min-ready 1: " + during_boot.stderr
    wait_until(lambda: ctl(arbiter, "health", "--all", timeout=10).returncode == 0, 60, "health --all once both are ready")


def test_health_fails_while_draining_but_health_live_succeeds(arbiter, workdir):
    arbiter.run(workers=1, extra=["--graceful-timeout", "30"])
    arbiter.wait_ready(1)
    started = workdir / "started"
    outcome: dict = {}

    def slow_request():
        try:
            outcome["response"] = arbiter.get(f"/slow?s=4&started={started}", timeout=30)
        except Exception as error:  # noqa: BLE001  (reported by the assertion below)
            outcome["error"] = error
    thread = threading.Thread(target=slow_request)
    thread.start()
    try:
        wait_until(started.exists, 20, "the slow request to be in its handler")
        arbiter.signal(signal.SIGTERM)
        draining = wait_until(lambda: (r := ctl(arbiter, "health", timeout=10)).returncode == 1 and r, 5,
                              "health to fail once the stop began")
        live = ctl(arbiter, "health", "--live", timeout=10)
        assert thread.is_alive(), "the slow request should still be in flight"
    finally:
        thread.join(30)

    assert "stopping" in draining.stderr and "(unhealthy)" in draining.stderr, draining.stderr
    assert live.returncode == 0, live.stderr
    assert live.stdout.startswith("alive: stopping"), live.stdout
    assert outcome["response"].status_code == 200, outcome
    assert arbiter.wait_exit(30) == 0


def test_health_options_with_another_command_are_a_usage_error(arbiter):
    arbiter.run(workers=1)
    arbiter.wait_ready(1)

    result = ctl(arbiter, "status", "--live", timeout=10)

    assert result.returncode == 2
    assert "--live is an option of health only" in result.stderr, result.stderr


# --------------------------------------------------------------------------------------------------
# Where the socket is and who may use it


def test_control_path_defaults_to_arbiter_control_from_the_environment(arbiter, workdir):
    path = workdir / "from-env.sock"
    arbiter.bind = f"127.0.0.1:{free_port()}"
    arbiter.control_path = path  # what wait_ready asks
    arbiter.start(["run", "-w", "1", "-b", arbiter.bind, "--python", str(TEST_PYTHON), "--chdir", str(APPS_DIR),
                   "hello:app"], env={"ARBITER_CONTROL": str(path)})
    arbiter.wait_ready(1)

    env = {**os.environ, "ARBITER_CONTROL": str(path)}
    result = subprocess.run([str(ARBITER_BIN), "ctl", "--json", "status"], capture_output=True, text=True,
                            timeout=10, env=env)

    assert stat.S_ISSOCK(path.stat().st_mode)
    assert f"control socket {path}" in arbiter.output()
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["pid"] == arbiter.pid


def test_control_socket_is_private_to_the_arbiters_user(arbiter):
    arbiter.run(workers=1)
    arbiter.wait_ready(1)

    info = arbiter.control_path.stat()

    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == os.geteuid()


def test_second_arbiter_on_the_same_control_path_refuses_to_start(arbiter, more_arbiters):
    arbiter.run(workers=1)
    first_workers = arbiter.wait_ready(1)
    second = more_arbiters()
    second.control_path = arbiter.control_path

    second.run(workers=1)
    code = second.wait_exit(30)

    assert code == 2
    assert "another arbiter is running with control socket" in second.output()
    assert str(arbiter.control_path) in second.output()
    assert not second.workers_seen - first_workers
    assert status(arbiter)["pid"] == arbiter.pid
    assert_serving(arbiter)


def test_stale_socket_of_a_killed_arbiter_is_replaced(arbiter, more_arbiters):
    arbiter.run(workers=1)
    arbiter.wait_ready(1)
    arbiter.kill_everything()  # SIGKILL: no chance to remove its socket
    assert stat.S_ISSOCK(arbiter.control_path.stat().st_mode)
    successor = more_arbiters()
    successor.control_path = arbiter.control_path

    successor.run(workers=1)
    successor.wait_ready(1)

    assert status(successor)["pid"] == successor.pid
    assert_serving(successor)


def test_control_path_that_is_a_regular_file_is_refused_and_left_alone(arbiter, workdir):
    path = workdir / "not-a-socket"
    path.write_text("precious\n")
    arbiter.control_path = path

    arbiter.run(workers=1)
    code = arbiter.wait_exit(30)

    assert code == 2
    assert "is not a socket" in arbiter.output()
    assert path.read_text() == "precious\n"


@pytest.fixture
def foreign_tmp_control_dir():
    """A uid with no account and its /tmp/arbiter-UID fallback directory, made by someone else first
    (root here); removed at teardown."""
    for uid in range(61000 + os.getpid() % 1000, 63000):
        path = Path(f"/tmp/arbiter-{uid}")
        if not os.path.lexists(path):
            break
    path.mkdir(mode=0o700)
    try:
        yield uid, path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _run_as(uid: int, arbiter: Arbiter) -> Arbiter:
    """`arbiter run` as uid, with no --control and no runtime directory: the /tmp fallback applies."""
    argv = ["run", "-w", "1", "-b", f"127.0.0.1:{free_port()}", "--python", str(TEST_PYTHON), "--chdir",
            str(APPS_DIR), "hello:app"]
    return arbiter.start(argv, env={"XDG_RUNTIME_DIR": "", "RUNTIME_DIRECTORY": ""},
                         wrapper=["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"])


@needs_root
def test_tmp_control_directory_created_by_another_user_is_refused(arbiter, foreign_tmp_control_dir):
    uid, path = foreign_tmp_control_dir
    _run_as(uid, arbiter)

    assert arbiter.wait_exit(20) == 2
    assert f"control directory {path} belongs to uid 0, not to this user (uid {uid})" in arbiter.output()
    assert list(path.iterdir()) == []
    ctl_result = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", str(ARBITER_BIN),
                                 "ctl", "status"], capture_output=True, text=True, timeout=10,
                                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    assert ctl_result.returncode == 1
    assert "belongs to uid 0" in ctl_result.stderr


@needs_root
def test_tmp_control_directory_writable_by_others_is_refused(arbiter, foreign_tmp_control_dir):
    uid, path = foreign_tmp_control_dir
    os.chown(path, uid, uid)
    path.chmod(0o777)
    _run_as(uid, arbiter)

    assert arbiter.wait_exit(20) == 2
    assert f"control directory {path} is writable by others (mode 777)" in arbiter.output()


@needs_root
def test_ctl_as_another_uid_cannot_connect(arbiter, workdir):
    workdir.chmod(0o711)  # nobody may reach the socket; only the socket's own mode stops it
    arbiter.run(workers=1)
    arbiter.wait_ready(1)

    result = ctl(arbiter, "status", as_user=as_nobody())

    assert result.returncode != 0
    assert "Permission denied" in result.stderr, result.stderr
    assert_serving(arbiter)


@needs_root
def test_ctl_as_another_uid_gets_permission_denied_from_the_arbiter_even_on_an_open_socket(arbiter, workdir):
    """Defence in depth: with the socket's mode opened up by mistake, SO_PEERCRED still decides."""
    workdir.chmod(0o711)
    arbiter.run(workers=2)
    arbiter.wait_ready(2)
    arbiter.control_path.chmod(0o666)

    read = ctl(arbiter, "status", as_user=as_nobody())
    write = ctl(arbiter, "scale", "3", as_user=as_nobody())

    for result, command in ((read, "status"), (write, "scale")):
        assert result.returncode != 0
        assert "permission_denied" in result.stderr, result.stderr
        assert f"uid {NOBODY} may not run '{command}'" in result.stderr, result.stderr
    assert status(arbiter)["target_workers"] == 2
    assert_serving(arbiter)


@needs_root
def test_control_group_member_may_read_status_but_not_scale(arbiter, workdir, control_group):
    workdir.chmod(0o711)
    arbiter.run(workers=2, extra=["--control-group", control_group.gr_name])
    arbiter.wait_ready(2)
    member = as_nobody(control_group.gr_gid)

    read = ctl(arbiter, "--json", "status", as_user=member)
    write = ctl(arbiter, "scale", "3", as_user=member)
    stop = ctl(arbiter, "stop", as_user=member)

    assert read.returncode == 0, read.stderr
    assert json.loads(read.stdout)["pid"] == arbiter.pid
    for result in (write, stop):
        assert result.returncode != 0
        assert "permission_denied" in result.stderr, result.stderr
    assert status(arbiter)["target_workers"] == 2
    assert f"uid {NOBODY}" in arbiter.output() and "may not run 'scale'" in arbiter.output()
    assert_serving(arbiter)


@needs_root
def test_control_group_socket_is_group_accessible_and_owned_by_the_group(arbiter, control_group):
    arbiter.run(workers=1, extra=["--control-group", control_group.gr_name])
    arbiter.wait_ready(1)

    info = arbiter.control_path.stat()

    assert stat.S_IMODE(info.st_mode) == 0o660
    assert info.st_gid == control_group.gr_gid


@needs_root
def test_control_group_non_member_cannot_connect(arbiter, workdir, control_group):
    workdir.chmod(0o711)
    arbiter.run(workers=1, extra=["--control-group", control_group.gr_name])
    arbiter.wait_ready(1)

    result = ctl(arbiter, "status", as_user=as_nobody())

    assert result.returncode != 0
    assert "Permission denied" in result.stderr, result.stderr


def test_unknown_control_group_is_a_configuration_error(arbiter):
    arbiter.run(workers=1, extra=["--control-group", "no-such-group-arbiter-it"])

    assert arbiter.wait_exit(30) == 2
    assert "no-such-group-arbiter-it: no such group" in arbiter.output()


def test_log_records_who_ran_which_change(arbiter):
    arbiter.run(workers=1)
    arbiter.wait_ready(1)

    process = subprocess.Popen([str(ARBITER_BIN), "ctl", "--control", str(arbiter.control_path), "scale", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.wait(timeout=90) == 0

    lines = [line for line in arbiter.output().splitlines() if f"uid {os.getuid()} (pid {process.pid}) ran" in line]
    assert len(lines) == 1, arbiter.tail()
    assert '"cmd":"scale"' in lines[0] and '"workers":2' in lines[0], lines[0]


def test_log_does_not_record_status_reads(arbiter):
    arbiter.run(workers=1)
    arbiter.wait_ready(1)

    process = subprocess.Popen([str(ARBITER_BIN), "ctl", "--control", str(arbiter.control_path), "status"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.wait(timeout=30) == 0

    assert f"(pid {process.pid}) ran" not in arbiter.output()


# --------------------------------------------------------------------------------------------------
# Bad input never hurts the daemon


def test_malformed_json_gets_bad_json_and_the_connection_stays_usable(arbiter):
    arbiter.run(workers=1)
    arbiter.wait_ready(1)

    bad, good = exchange(arbiter.control_path, b'{"cmd": "status"\n{"cmd":"status"}\n', replies=2)

    assert error_code(bad) == "bad_json"
    assert good["ok"] is True and good["pid"] == arbiter.pid
    assert_serving(arbiter)


@pytest.mark.parametrize("request_line, code", [
    (b'{"cmd":"recycl\\\xd6\x82', "bad_json"),                       # jansson quotes the bytes near the error
    (b'{"cmd":"' + b"x" * 63 + "\u00e9tat".encode() + b'"}', "unknown_command"),  # the name cut at 64 bytes
])
def test_bytes_that_are_not_utf8_in_an_error_message_still_get_an_error_reply(arbiter, request_line, code):
    arbiter.run(workers=1)
    arbiter.wait_ready(1)

    replies = exchange(arbiter.control_path, request_line + b'\n{"cmd":"status"}\n', replies=2)

    assert len(replies) == 2, f"expected an error reply, then the status reply; got {replies}"
    assert error_code(replies[0]) == code
    assert replies[1]["ok"] is True
    assert_serving(arbiter)


@pytest.mark.parametrize("request_line", [
    b'{"cmd":"scale","workers":"8"}',
    b'{"cmd":"scale","delta":1.5}',
    b'{"cmd":7}',
    b'{"workers":3}',
    b'["status"]',
    b'{"cmd":"reload","wait":"yes"}',
    b'{"cmd":"reload","timeout":-1}',
    b'{"cmd":"recycle","id":"1"}',
    b'{"cmd":"stop","quick":1}',
])
def test_wrong_types_get_bad_request_and_change_nothing(arbiter, request_line):
    arbiter.run(workers=1)
    pids = arbiter.wait_ready(1)

    (reply,) = exchange(arbiter.control_path, request_line + b"\n")

    assert error_code(reply) == "bad_request"
    assert {w["pid"] for w in status(arbiter)["workers"]} == pids
    assert_serving(arbiter)


@pytest.mark.parametrize("request_line", [b'"status"', b"42", b"null"])
def test_json_that_is_not_an_object_gets_bad_request(arbiter, request_line):
    arbiter.run(workers=1)
    arbiter.wait_ready(1)

    (reply,) = exchange(arbiter.control_path, request_line + b"\n")

    assert error_code(reply) == "bad_request"


def test_scale_with_both_workers_and_delta_gets_invalid_argument(arbiter):
    arbiter.run(workers=1)
    arbiter.wait_ready(1)

    (reply,) = exchange(arbiter.control_path, b'{"cmd":"scale","workers":3,"delta":1}\n')

    assert error_code(reply) == "invalid_argument"
    assert status(arbiter)["target_workers"] == 1


def test_unknown_command_gets_unknown_command_listing_the_valid_ones(arbiter):
    arbiter.run(workers=1)
    arbiter.wait_ready(1)

    (reply,) = exchange(arbiter.control_path, b'{"cmd":"restart"}\n')

    assert error_code(reply) == "unknown_command"
    assert "'restart'" in reply["error"]["message"]
    assert VALID_COMMANDS in reply["error"]["message"]
    assert_serving(arbiter)


def test_ctl_with_an_unknown_command_lists_the_valid_ones_and_exits_2(arbiter):
    arbiter.run(workers=1)
    arbiter.wait_ready(1)

    result = ctl(arbiter, "restart")

    assert result.returncode == 2
    assert VALID_COMMANDS in result.stderr, result.stderr


def test_a_line_longer_than_the_limit_gets_line_too_long_and_is_disconnected(arbiter):
    arbiter.run(workers=1)
    arbiter.wait_ready(1)

    with connect(arbiter.control_path) as client:
        client.sendall(b'{"cmd":"status","padding":"' + b"x" * (CONTROL_LINE_MAX + 100) + b'"}\n')
        replies, closed = read_replies(client, timeout=10)

    assert [error_code(reply) for reply in replies] == ["line_too_long"]
    assert str(CONTROL_LINE_MAX) in replies[0]["error"]["message"]
    assert closed, "the connection should be closed after line_too_long"
    assert_serving(arbiter)


def test_a_line_just_under_the_limit_is_accepted(arbiter):
    arbiter.run(workers=1)
    arbiter.wait_ready(1)
    prefix, suffix = b'{"cmd":"status","padding":"', b'"}'
    line = prefix + b"x" * (CONTROL_LINE_MAX - len(prefix) - len(suffix) - 1) + suffix + b"\n"
    assert len(line) == CONTROL_LINE_MAX

    (reply,) = exchange(arbiter.control_path, line)

    assert reply["ok"] is True


def test_clients_beyond_the_limit_are_served_while_the_oldest_idle_ones_make_room(arbiter):
    arbiter.run(workers=1)
    arbiter.wait_ready(1)
    count = CONTROL_MAX_CLIENTS + 40

    clients = [connect(arbiter.control_path) for _ in range(count)]
    try:
        # Quickly enough that none has reached its first-request deadline: the 40 oldest make room.
        for client in clients[40:]:
            client.sendall(b'{"cmd":"status"}\n')
            client.shutdown(socket.SHUT_WR)
        for client in clients[40:]:
            replies, closed = read_replies(client, timeout=10)
            assert [reply["ok"] for reply in replies] == [True] and closed, replies
        for client in clients[:40]:
            replies, closed = read_replies(client, timeout=10)
            assert closed and [error_code(reply) for reply in replies] in ([], ["busy"]), replies
    finally:
        for client in clients:
            client.close()

    assert_serving(arbiter)


def test_a_client_that_never_sends_is_dropped_after_the_first_request_deadline(arbiter):
    arbiter.run(workers=1)
    arbiter.wait_ready(1)

    with connect(arbiter.control_path) as silent:
        connected = time.monotonic()
        assert_serving(arbiter)  # a silent client blocks neither HTTP nor other control clients
        replies, closed = read_replies(silent, timeout=CONTROL_FIRST_REQUEST_S + 10)
        waited = time.monotonic() - connected

    assert closed and replies == [], replies
    assert CONTROL_FIRST_REQUEST_S - 0.5 <= waited <= CONTROL_FIRST_REQUEST_S + 3, f"dropped after {waited:.1f}s"
    assert_serving(arbiter)


def test_a_client_sending_status_every_few_seconds_stays_connected_past_the_idle_timeout(arbiter):
    arbiter.run(workers=1)
    arbiter.wait_ready(1)

    with connect(arbiter.control_path) as client:
        connected = time.monotonic()
        answered = 0
        while time.monotonic() - connected < CONTROL_IDLE_S + 3:  # bounded: about 4 rounds
            client.sendall(b'{"cmd":"status"}\n')
            replies, closed = read_replies(client, timeout=2)
            assert not closed and len(replies) == 1 and replies[0]["ok"], (replies, closed)
            answered += 1
            # Silence for 4 s: the arbiter must neither answer nor close (select sees EOF as readable).
            readable, _, _ = select.select([client], [], [], 4.0)
            assert not readable, f"the connection was closed {time.monotonic() - connected:.1f} s after connecting"

    assert answered >= 3
    assert_serving(arbiter)


def test_clients_that_disconnect_right_after_asking_do_not_hurt_the_arbiter(arbiter):
    arbiter.run(workers=4)
    arbiter.wait_ready(4)

    for attempt in range(200):
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(arbiter.control_path))
        client.sendall(b'{"cmd":"status"}\n')
        if attempt % 2:
            # Reset instead of an orderly close: the reply then hits a dead peer.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()

    assert_serving(arbiter)


def test_a_client_that_pipelines_many_requests_and_hangs_up_unread_does_not_hurt_the_arbiter(arbiter):
    arbiter.run(workers=4)
    arbiter.wait_ready(4)

    for _ in range(5):
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(arbiter.control_path))
        client.sendall(b'{"cmd":"status"}\n' * 400)
        client.close()

    assert_serving(arbiter)


def test_a_client_that_hangs_up_while_its_scale_waits_does_not_stop_the_scale(arbiter):
    arbiter.run(workers=1)
    arbiter.wait_ready(1)

    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(str(arbiter.control_path))
    client.sendall(b'{"cmd":"scale","workers":3}\n')
    client.close()

    wait_until(lambda: [w["state"] for w in status(arbiter)["workers"]] == ["ready"] * 3, 60,
               "3 ready workers after the abandoned scale")
    assert_serving(arbiter)


def test_requests_sent_behind_a_waiting_command_are_answered_after_it_in_order(arbiter):
    arbiter.run(workers=1)
    arbiter.wait_ready(1)

    scaled, after = exchange(arbiter.control_path, b'{"cmd":"scale","workers":2}\n{"cmd":"status"}\n', replies=2,
                             timeout=60)

    assert scaled == {"ok": True, "target_workers": 2, "ready_workers": 2}
    assert after["ok"] is True and after["ready_workers"] == 2


# --------------------------------------------------------------------------------------------------
# Commands that cannot complete, or cannot run yet


def test_scale_that_does_not_complete_within_its_timeout_fails_with_timeout_and_goes_on(arbiter):
    arbiter.run(app="slow_boot:app", workers=1, extra=["--env", "SLOW_BOOT_SECONDS=4"])
    arbiter.wait_ready(1)

    result = ctl(arbiter, "--timeout", "1", "scale", "2")

    assert result.returncode != 0
    assert "(timeout)" in result.stderr and "background" in result.stderr, result.stderr
    wait_until(lambda: status(arbiter)["ready_workers"] == 2, 60, "the scale to finish in the background")


def test_scale_while_starting_is_refused_and_reload_is_queued_until_the_start_finished(arbiter):
    arbiter.run(app="slow_boot:app", workers=1, extra=["--env", "SLOW_BOOT_SECONDS=6"])
    def starting():
        try:
            return status(arbiter)["state"] == "starting"
        except (AssertionError, ValueError):
            return False
    wait_until(starting, 20, "the control socket to answer while the first worker boots")

    scale = ctl(arbiter, "scale", "2")
    reload = ctl(arbiter, "reload", "--timeout", "60")  # a deploy landing during a start is not lost

    assert scale.returncode != 0 and "(not_running)" in scale.stderr, scale.stderr
    assert reload.returncode == 0, reload.stderr
    current = status(arbiter)
    assert current["target_workers"] == 1 and current["generation"] == 1 and current["ready_workers"] == 1


def test_ctl_with_a_prefix_of_a_command_is_a_usage_error(workdir):
    result = subprocess.run([str(ARBITER_BIN), "ctl", "--control", str(workdir / "none.sock"), "stat"],
                            capture_output=True, text=True, timeout=10)

    assert result.returncode == 2
    assert VALID_COMMANDS in result.stderr, result.stderr
