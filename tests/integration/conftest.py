"""Fixtures and helpers for driving the real arbiter binary with real uvicorn workers.

Everything here waits on conditions with deadlines (never fixed sleeps), and every process a test
starts is killed by pid at teardown: the arbiter, then any worker it left behind.

Environment:
    ARBITER_BIN          the binary under test (default: <repo>/build/arbiter)
    ARBITER_TEST_PYTHON  the interpreter whose venv has fastapi + uvicorn (default: <repo>/.venv/bin/python)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, Optional, TypeVar

import httpx
import pytest

# Fixtures that change a host setting and restore it; defined there, available to every test here.
from host_settings import control_group, tcp_migrate_req  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
APPS_DIR = REPO / "tests" / "apps"
ARBITER_BIN = Path(os.environ.get("ARBITER_BIN", REPO / "build" / "arbiter"))
TEST_PYTHON = Path(os.environ.get("ARBITER_TEST_PYTHON", REPO / ".venv" / "bin" / "python"))

# Variables from the test runner's own environment that would change how the arbiter behaves.
SCRUBBED_ENV = (
    "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
    "WEB_CONCURRENCY", "VIRTUAL_ENV", "ARBITER_CONTROL", "PYTHONPATH",
)

T = TypeVar("T")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "valgrind: runs the arbiter under valgrind (slow; deselect with -m 'not valgrind')")


def pytest_sessionstart(session: pytest.Session) -> None:
    missing = []
    if not os.access(ARBITER_BIN, os.X_OK):
        missing.append(f"arbiter binary {ARBITER_BIN} (build it: cmake -S . -B build && cmake --build build -j2, or set ARBITER_BIN)")
    if not os.access(TEST_PYTHON, os.X_OK):
        missing.append(f"test interpreter {TEST_PYTHON} (run ./scripts/test.sh once, or set ARBITER_TEST_PYTHON)")
    if missing:
        pytest.exit("cannot run the integration tests, missing: " + "; ".join(missing), returncode=4)


# --------------------------------------------------------------------------------------------------
# Waiting


def wait_until(predicate: Callable[[], T], timeout: float, message: str, interval: float = 0.05) -> T:
    """Poll predicate until it returns something truthy (returned) or fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for: {message}")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------------
# Processes (through /proc; this kernel has no /proc/<pid>/task/*/children, so scan ppids)


def _stat_fields(pid: int) -> Optional[list[str]]:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            raw = stat.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may contain spaces and parentheses: the fields start after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def pid_alive(pid: int) -> bool:
    """True if pid exists and is not a zombie (a zombie has exited; it only waits to be reaped)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def children_of(pid: int) -> set[int]:
    """Live (non-zombie) direct children of pid."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None and fields[1] == str(pid) and fields[0] not in ("Z", "X"):
            found.add(int(entry))
    return found


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""


def is_worker(pid: int) -> bool:
    return "arbiter_worker" in cmdline(pid)


def is_zygote(pid: int) -> bool:
    """The --preload zygote names itself (prctl PR_SET_NAME); its forked workers rename themselves."""
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().strip() == "arbiter-zygote"
    except OSError:
        return False


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # After the comm field: state=0 ppid=1 ... utime=11 stime=12 (man 5 proc, fields 14 and 15).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------------
# Sockets


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the arbiter does not support binding port 0)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on host:port now (SO_REUSEADDR, as servers do, so that
    TIME_WAIT leftovers from earlier connections do not count as 'in use')."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
            probe.listen(1)
        except OSError:
            return False
    return True


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------------------
# The arbiter under test


class Arbiter:
    """One `arbiter` process (run, check, or a usage error), its output file and its workers."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.log_path = workdir / "arbiter.log"
        self.control_path = workdir / "control.sock"
        self.proc: Optional[subprocess.Popen] = None
        self.argv: list[str] = []
        self.bind: Optional[str] = None
        self.workers_seen: set[int] = set()

    # -- starting ----------------------------------------------------------------------------------

    def start(self, argv: Iterable[str], env: Optional[dict] = None, wrapper: Iterable[str] = (),
              binary: Optional[Path] = None) -> "Arbiter":
        """binary: run another copy of the arbiter than ARBITER_BIN (an upgrade test replaces it)."""
        assert self.proc is None, "one process per Arbiter"
        self.argv = [*wrapper, str(binary or ARBITER_BIN), *argv]
        full_env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
        full_env.update(env or {})
        with open(self.log_path, "ab") as log:
            # A session of its own: a terminal's Ctrl-C or a signal to pytest's group never reaches it.
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=full_env, cwd=self.workdir, start_new_session=True,
            )
        return self

    def run(self, app: str = "hello:app", workers: int = 2, bind: Optional[str] = None,
            extra: Iterable[str] = (), env: Optional[dict] = None, wrapper: Iterable[str] = (),
            python: Optional[str] = None, binary: Optional[Path] = None) -> "Arbiter":
        """Start `arbiter run` on the test apps; bind defaults to a free loopback port."""
        self.bind = bind or f"127.0.0.1:{free_port()}"
        argv = [
            "run", "-w", str(workers), "-b", self.bind,
            "--python", python or str(TEST_PYTHON), "--chdir", str(APPS_DIR),
            "--control", str(self.control_path), *extra, app,
        ]
        return self.start(argv, env=env, wrapper=wrapper, binary=binary)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    # -- observing ---------------------------------------------------------------------------------

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def workers(self) -> set[int]:
        """The live worker processes right now (direct children of the arbiter, not a zygote)."""
        if not self.running():
            return set()
        children = children_of(self.pid)
        self.workers_seen |= children  # a zygote too: killed at teardown like the workers
        return {pid for pid in children if not is_zygote(pid)}

    def base_url(self) -> str:
        assert self.bind is not None
        if self.bind.startswith("unix:"):
            return "http://arbiter"
        return f"http://{self.bind}"

    def client(self, timeout: float = 5.0) -> httpx.Client:
        """A fresh client (so a fresh connection, which any worker may accept)."""
        assert self.bind is not None
        if self.bind.startswith("unix:"):
            transport = httpx.HTTPTransport(uds=self.bind[len("unix:"):])
            return httpx.Client(transport=transport, base_url=self.base_url(), timeout=timeout)
        return httpx.Client(base_url=self.base_url(), timeout=timeout)

    def get(self, path: str = "/", timeout: float = 5.0) -> httpx.Response:
        with self.client(timeout=timeout) as client:
            return client.get(path)

    def try_get_json(self, path: str = "/", timeout: float = 2.0) -> Optional[dict]:
        """The JSON body of a 200 answer, or None if the request failed in any way."""
        try:
            response = self.get(path, timeout=timeout)
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        payload = response.json()
        if isinstance(payload, dict) and isinstance(payload.get("pid"), int):
            self.workers_seen.add(payload["pid"])
        return payload

    # -- waiting -----------------------------------------------------------------------------------

    def _check_running(self, waiting_for: str) -> None:
        if not self.running():
            raise AssertionError(
                f"arbiter exited with {self.proc.returncode if self.proc else None} while waiting for "
                f"{waiting_for}; output:\n{self.tail()}"
            )

    def ready_pids_from_ctl(self) -> Optional[set[int]]:
        """The pids `ctl status` reports as ready, or None if the control socket did not answer."""
        if not self.control_path.exists():
            return None
        try:
            result = subprocess.run(
                [str(ARBITER_BIN), "ctl", "--control", str(self.control_path), "--json", "status"],
                capture_output=True, text=True, timeout=5,
            )
            status = json.loads(result.stdout) if result.returncode == 0 else None
        except (subprocess.TimeoutExpired, ValueError):
            return None
        if not isinstance(status, dict) or not isinstance(status.get("workers"), list):
            return None
        return {w.get("pid") for w in status["workers"] if w.get("state") == "ready"}

    def wait_ready(self, workers: int, timeout: float = 30.0) -> set[int]:
        """Wait until `workers` worker processes exist, an HTTP request is answered and, when the
        control socket answers, `ctl status` reports all of them ready (a worker answering is not
        enough: the others may still be booting, and the arbiter treats that as 'starting')."""
        def ready():
            self._check_running(f"{workers} workers to be ready")
            current = self.workers()
            if len(current) != workers or self.try_get_json() is None:
                return None
            from_ctl = self.ready_pids_from_ctl()
            return current if from_ctl is None or from_ctl == current else None
        try:
            return wait_until(ready, timeout, f"{workers} workers serving on {self.bind}", interval=0.1)
        except AssertionError as failure:
            raise AssertionError(f"{failure}\narbiter output:\n{self.tail()}") from None

    def answering_pids(self, count: int, timeout: float = 20.0) -> set[int]:
        """Send requests (each on a new connection) until `count` distinct pids have answered."""
        seen: set[int] = set()
        def enough():
            self._check_running(f"{count} distinct pids to answer")
            payload = self.try_get_json()
            if payload is not None:
                seen.add(payload["pid"])
            return len(seen) >= count
        wait_until(enough, timeout, f"{count} distinct pids answering on {self.bind} (saw {seen})", interval=0.01)
        return seen

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"arbiter still running after {timeout}s; output:\n{self.tail()}") from None

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        os.kill(self.pid, signum)

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    # -- cleaning up -------------------------------------------------------------------------------

    def kill_everything(self) -> None:
        """SIGKILL the arbiter and every worker it had that is still alive, by pid."""
        if self.proc is None:
            return
        if self.running():
            self.workers()
            os.kill(self.pid, signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for pid in self.workers_seen:
            # Check the pid is still one of our workers and not a recycled pid of someone else.
            if pid_alive(pid) and is_worker(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


@pytest.fixture
def workdir():
    # Short paths under /tmp: a UNIX socket path must fit in 108 bytes.
    path = Path(tempfile.mkdtemp(prefix="arbiter-it-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def arbiter(workdir):
    """An Arbiter to start; killed (with its workers) at teardown whatever the test did."""
    instance = Arbiter(workdir)
    yield instance
    instance.kill_everything()
    if instance.proc is not None:
        # Shown by pytest only when the test failed.
        print(f"--- {' '.join(instance.argv)}\n--- exit {instance.proc.returncode}; output:\n{instance.tail(200)}")


@pytest.fixture(params=[pytest.param([], id="exec"), pytest.param(["--preload"], id="preload")])
def spawner(request) -> list[str]:
    """Run a supervision scenario with both spawners: a fresh interpreter per worker, and forks of a
    zygote (--preload). The value is the extra command-line arguments."""
    return request.param


@pytest.fixture(scope="session")
def venv_without_uvicorn():
    """A fresh venv from the system Python with nothing installed in it."""
    path = Path(tempfile.mkdtemp(prefix="arbiter-novenv-", dir="/tmp"))
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(path / "venv")], check=True, timeout=120)
    yield path / "venv" / "bin" / "python"
    shutil.rmtree(path, ignore_errors=True)
