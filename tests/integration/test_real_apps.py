"""The real-apps matrix (issue 18): apps written here that use third-party packages nobody on this
project wrote (tests/apps/real/, installed from PyPI into .venv-apps by scripts/test.sh from
tests/requirements-apps.txt), each served with -w 2 in exec mode and under --preload:

- it answers real requests, checked in every worker (a prediction, a SQL query, a GraphQL query, a
  span exported, a counter exact across workers, bytes in the files the app opened at import);
- it reloads twice under keep-alive load (tests/integration/load.py) with not one failed request;
- it stops on TERM (exit 0) with nothing left running: no process that carries this run's marker
  in its environment, descendants of any depth included, is alive after the arbiter exited.

One arbiter per app x mode serves the three tests of TestRealApp in order (pytest groups a class's
tests by the class-scoped fixture's parameter): the matrix starts 13 arbiters, not 39.
The OpenMP app is served in exec mode only: under --preload it must be refused, and the refusal
names OpenMP and OMP_NUM_THREADS (test_openmp_at_import_is_refused_under_preload...).

Environment: ARBITER_APPS_PYTHON, the apps' interpreter (default <repo>/.venv-apps/bin/python).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import httpx
import pytest

from conftest import ARBITER_BIN, REPO, TEST_PYTHON, Arbiter, cmdline, pid_alive, wait_until
from load import LoadRun

APPS_PYTHON = Path(os.environ.get("ARBITER_APPS_PYTHON", REPO / ".venv-apps" / "bin" / "python"))
WORKERS = 2
BOOT_SECONDS = 180  # numpy + pandas + scikit-learn imports on 2 busy CPUs
MARKER = "REAL_APPS_TEST_RUN"  # not ARBITER_*: the arbiter drops those from workers' environment
QUIET = ["--no-access-log", "--boot-timeout", str(BOOT_SECONDS)]


@dataclass
class Served:
    """One arbiter serving one app in one mode, shared by the tests of TestRealApp."""
    app: "RealApp"
    mode: str
    arbiter: Arbiter
    workdir: Path
    marker: str
    pids: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class RealApp:
    name: str
    target: str  # module:attribute, under tests/apps
    pid_path: str  # answers {"pid": ...} (the harness's "which worker is this connection on")
    load_path: str  # what the load requests; its body names the pid too. A cheap one: the load must
    # not starve the booting workers of the 2 CPUs (a /predict load tripled the reloads' time)
    check: Callable[[Served, httpx.Client, int], None]  # real requests on a connection to worker pid
    prepare: Callable[[Path], dict] = lambda workdir: {}  # files the app needs; returns its env
    preload: bool = True


# --------------------------------------------------------------------------------------------------
# What each app must answer (on one connection, so on one worker: the pid given)


def check_prediction(served: Served, client: httpx.Client, pid: int) -> None:
    for _ in range(3):
        a, b, c, d = (round(random.uniform(-5, 5), 3) for _ in range(4))
        reply = client.get("/predict", params={"a": a, "b": b, "c": c, "d": d}).json()
        assert reply["pid"] == pid
        assert reply["prediction"] == pytest.approx(3 * a - 2 * b + 0.5 * c + 7, abs=1e-6), (a, b, c, d, reply)
    rows = client.get("/segments").json()["rows"]
    assert sum(rows.values()) == client.get("/").json()["rows"] and set(rows) == {"0", "1", "2"}


def check_openmp_prediction(served: Served, client: httpx.Client, pid: int) -> None:
    assert client.get("/predict", params={"x": 2, "y": 1}).json() == {"pid": pid, "class": 1}
    assert client.get("/predict", params={"x": -2, "y": -1}).json() == {"pid": pid, "class": 0}


DATASETTE_ROWS = [{"id": 1, "name": "alpha"}, {"id": 2, "name": "beta"}, {"id": 3, "name": "gamma"}]


def make_datasette_db(workdir: Path) -> dict:
    path = workdir / "data.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO items VALUES (:id, :name)", DATASETTE_ROWS)
    return {"DATASETTE_DB": str(path)}


def check_datasette(served: Served, client: httpx.Client, pid: int) -> None:
    table = client.get("/data/items.json", params={"_shape": "array"})
    assert table.status_code == 200 and table.json() == DATASETTE_ROWS, table.text[:500]
    query = client.get("/data.json", params={"sql": "SELECT count(*) AS n FROM items", "_shape": "array"})
    assert query.json() == [{"n": 3}], query.text[:500]
    assert "<html" in client.get("/data/items").text.lower()


def check_graphql(served: Served, client: httpx.Client, pid: int) -> None:
    reply = client.post("/graphql", json={"query": "{ worker { pid } square(n: 12) }"})
    assert reply.json() == {"data": {"worker": {"pid": pid}, "square": 144}}, reply.text[:500]


def make_span_dir(workdir: Path) -> dict:
    (workdir / "spans").mkdir()
    return {"OTEL_SPAN_DIR": str(workdir / "spans")}


def server_spans(served: Served, pid: int) -> list[dict]:
    try:
        lines = (served.workdir / "spans" / f"spans-{pid}.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return []
    spans = [json.loads(line) for line in lines if line.strip()]
    return [span for span in spans if span.get("kind") == "SpanKind.SERVER"]


def check_spans_exported(served: Served, client: httpx.Client, pid: int) -> None:
    client.get("/", headers={"x-request": f"span-{pid}"})
    spans = wait_until(lambda: server_spans(served, pid), 30,
                       f"a server span exported by worker {pid} into {served.workdir / 'spans'}")
    assert any(span["attributes"].get("http.route") == "/" for span in spans), spans[:3]


def make_multiproc_dir(workdir: Path) -> dict:
    (workdir / "prometheus").mkdir()
    return {"PROMETHEUS_MULTIPROC_DIR": str(workdir / "prometheus")}


def counted_hits(client: httpx.Client) -> float:
    exposition = client.get("/metrics").text
    found = re.search(r"^arbiter_test_hits_total ([0-9.e+]+)$", exposition, re.MULTILINE)
    assert found, exposition[:1000]
    return float(found.group(1))


def check_counter(served: Served, client: httpx.Client, pid: int) -> None:
    before = counted_hits(client)
    for _ in range(5):
        assert client.get("/hit").json() == {"pid": pid}
    # Exact: another worker's hits are in the sum too, but nothing else hits while this runs.
    assert counted_hits(client) == before + 5


def make_files_dir(workdir: Path) -> dict:
    (workdir / "files").mkdir()
    return {"FILES_APP_DIR": str(workdir / "files")}


def check_bytes_land_in_the_files(served: Served, client: httpx.Client, pid: int) -> None:
    tag = f"tag-{uuid.uuid4().hex[:8]}"
    assert client.get("/write", params={"tag": tag}).json() == {"pid": pid, "tag": tag}
    for name in ("audit.log", "app.log"):
        lines = (served.workdir / "files" / name).read_text().splitlines()
        assert f"{tag} {pid}" in lines, f"{name} lacks '{tag} {pid}': {lines[-10:]}"
    assert "ignoring a channel line" not in served.arbiter.output()


APPS = [
    RealApp("sklearn", "real.ml_app:app", "/", "/segments", check_prediction),
    RealApp("openmp", "real.openmp_app:app", "/", "/", check_openmp_prediction, preload=False),
    RealApp("datasette", "real.datasette_app:app", "/-/pid", "/-/pid", check_datasette, make_datasette_db),
    RealApp("strawberry", "real.graphql_app:app", "/", "/graphql?query=%7Bworker%7Bpid%7D%7D", check_graphql),
    RealApp("opentelemetry", "real.otel_app:app", "/", "/", check_spans_exported, make_span_dir),
    RealApp("prometheus", "real.prometheus_app:app", "/", "/hit", check_counter, make_multiproc_dir),
    RealApp("files", "real.files_app:app", "/", "/write?tag=load", check_bytes_land_in_the_files, make_files_dir),
]
MODES = {"exec": [], "preload": ["--preload"]}
CASES = [pytest.param((app, mode), id=f"{app.name}-{mode}")
         for app in APPS for mode in MODES if app.preload or mode == "exec"]


# --------------------------------------------------------------------------------------------------
# Harness


def ctl(arbiter: Arbiter, *command: str, timeout: float = 240) -> str:
    result = subprocess.run([str(ARBITER_BIN), "ctl", "--control", str(arbiter.control_path), *command],
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"ctl {' '.join(command)} exited {result.returncode}: {result.stderr}\n{arbiter.tail(40)}"
    return result.stdout


def ready_pids(arbiter: Arbiter) -> set[int]:
    status = json.loads(ctl(arbiter, "--json", "status"))
    return {worker["pid"] for worker in status["workers"] if worker["state"] == "ready"}


def wait_serving(served: Served) -> set[int]:
    """WORKERS workers exist, `ctl status` says all are ready, and the app answers its pid path."""
    arbiter = served.arbiter

    def serving():
        arbiter._check_running(f"{WORKERS} workers serving {served.app.target}")
        current = arbiter.workers()
        if len(current) != WORKERS or arbiter.try_get_json(served.app.pid_path) is None:
            return None
        return current if arbiter.ready_pids_from_ctl() == current else None
    try:
        return wait_until(serving, BOOT_SECONDS, f"{WORKERS} workers serving {served.app.target}", interval=0.2)
    except AssertionError as failure:
        raise AssertionError(f"{failure}\narbiter output:\n{arbiter.tail(80)}") from None


def marked_processes(marker: str) -> set[int]:
    """Every live process whose environment carries this run's marker: the arbiter's whole tree,
    whatever reparented it."""
    needle = f"{MARKER}={marker}".encode()
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as environ:
                if needle in environ.read().split(b"\0") and pid_alive(int(entry)):
                    found.add(int(entry))
        except OSError:
            continue
    return found


@pytest.fixture(scope="class", params=CASES)
def served(request):
    app, mode = request.param
    if not os.access(APPS_PYTHON, os.X_OK):
        pytest.fail(f"the apps' interpreter {APPS_PYTHON} is missing: run scripts/test.sh (its install stage "
                    "makes .venv-apps from tests/requirements-apps.txt), or set ARBITER_APPS_PYTHON")
    workdir = Path(tempfile.mkdtemp(prefix="arbiter-real-", dir="/tmp"))
    marker = uuid.uuid4().hex
    arbiter = Arbiter(workdir)
    state = Served(app, mode, arbiter, workdir, marker)
    try:
        env = {MARKER: marker, **app.prepare(workdir)}
        arbiter.run(app=app.target, workers=WORKERS, python=str(APPS_PYTHON), extra=[*QUIET, *MODES[mode]], env=env)
        state.pids = wait_serving(state)
        yield state
    finally:
        arbiter.workers_seen |= marked_processes(marker)
        arbiter.kill_everything()
        for pid in marked_processes(marker):  # what kill_everything cannot recognise as a worker
            os.kill(pid, signal.SIGKILL)
        print(f"--- {' '.join(arbiter.argv)}\n--- output:\n{arbiter.tail(120)}")
        shutil.rmtree(workdir, ignore_errors=True)


def on_every_worker(served: Served, pids: set[int], timeout: float = 60) -> None:
    """Run the app's check on a connection to each of pids (new connections until each was met)."""
    checked: set[int] = set()

    def all_checked():
        with served.arbiter.client(timeout=30) as client:
            pid = client.get(served.app.pid_path).json()["pid"]
            if pid in pids and pid not in checked:
                served.app.check(served, client, pid)
                checked.add(pid)
        return checked == pids
    wait_until(all_checked, timeout, f"the check on every worker {sorted(pids)} (checked {sorted(checked)})", interval=0.01)


# --------------------------------------------------------------------------------------------------
# The matrix


class TestRealApp:
    def test_answers_real_requests_in_every_worker(self, served):
        on_every_worker(served, served.pids)

    def test_reloads_twice_under_keep_alive_load_without_a_failed_request(self, served):
        arbiter = served.arbiter
        old = wait_serving(served)
        load = LoadRun(str(TEST_PYTHON), arbiter.base_url() + served.app.load_path, served.workdir,
                       connections=6, close_connections=2, seconds=150, timeout=30)
        try:
            load.wait_answered(100, timeout=60)
            generations = [old]
            for _ in range(2):
                ctl(arbiter, "reload")
                new = ready_pids(arbiter)
                assert len(new) == WORKERS and not new & generations[-1], f"the reload kept a worker: {generations[-1]} -> {new}"
                generations.append(new)
                load.wait_for(lambda figures: sum(figures["pids"].get(str(pid), 0) for pid in new) >= 50, 60,
                              f"50 answers from the new workers {sorted(new)}")
            report = load.stop()
        finally:
            load.close()

        assert report["failed"] == 0, f"{report['failed']} of {report['total']} failed: {report}\n{arbiter.tail(60)}"
        assert {int(pid) for pid in report["pids"]} & old, "the load never reached the first workers"
        on_every_worker(served, generations[-1])

    def test_stops_on_term_with_nothing_left_running(self, served):
        arbiter = served.arbiter
        wait_serving(served)
        before = marked_processes(served.marker)
        assert arbiter.pid in before and arbiter.workers() <= before, f"the marker is not in the tree: {before}"

        arbiter.signal(signal.SIGTERM)
        code = arbiter.wait_exit(90)

        assert code == 0, arbiter.tail(60)
        try:
            wait_until(lambda: not marked_processes(served.marker), 5, "every process of the run to be gone")
        except AssertionError:
            left = {pid: cmdline(pid) for pid in marked_processes(served.marker)}
            pytest.fail(f"left running after the arbiter exited: {left}")


def test_openmp_at_import_is_refused_under_preload_naming_openmp_and_omp_num_threads(arbiter):
    if not os.access(APPS_PYTHON, os.X_OK):
        pytest.fail(f"the apps' interpreter {APPS_PYTHON} is missing (scripts/test.sh makes .venv-apps)")
    arbiter.run(app="real.openmp_app:app", workers=WORKERS, python=str(APPS_PYTHON), extra=[*QUIET, "--preload"])

    code = arbiter.wait_exit(BOOT_SECONDS)

    output = arbiter.output()
    assert code == 3, output[-3000:]
    assert "OpenMP" in output and "OMP_NUM_THREADS" in output, output[-3000:]
