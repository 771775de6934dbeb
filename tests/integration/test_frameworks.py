"""The framework matrix: "any app uvicorn can serve", tested. FastAPI, Starlette, Litestar, Quart,
Django (ASGI) and a plain ASGI callable (tests/apps/frameworks/), each from PyPI, each:

- served by real workers;
- reloaded under load from a second process (load.py) with not one failed request;
- stopped gracefully with a request in flight (SIGTERM: the request finishes, exit 0);
- echoing over a WebSocket where the framework has them (Django has none without Channels);
- booted with --lifespan auto|on|off as uvicorn documents it: auto runs the lifespan when the app
  supports it and carries on without it when the app raises on the lifespan scope (Django); on
  runs it and treats such an app as failed to boot (exit 3); off never runs it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from dataclasses import dataclass
from typing import Optional

import pytest

from conftest import ARBITER_BIN, TEST_PYTHON, Arbiter, wait_until
from load import LoadRun


@dataclass(frozen=True)
class Framework:
    name: str
    app: str
    websockets: bool
    lifespan: bool  # does the app take part in the ASGI lifespan protocol?


FRAMEWORKS = [
    Framework("fastapi", "frameworks.fastapi_app:app", websockets=True, lifespan=True),
    Framework("starlette", "frameworks.starlette_app:app", websockets=True, lifespan=True),
    Framework("litestar", "frameworks.litestar_app:app", websockets=True, lifespan=True),
    Framework("quart", "frameworks.quart_app:app", websockets=True, lifespan=True),
    Framework("django", "frameworks.django_app:app", websockets=False, lifespan=False),
    Framework("plain", "frameworks.plain_asgi:app", websockets=True, lifespan=True),
]
ALL = [pytest.param(f, id=f.name) for f in FRAMEWORKS]
WITH_WEBSOCKETS = [pytest.param(f, id=f.name) for f in FRAMEWORKS if f.websockets]
QUIET = ["--no-access-log"]
CONNECTIONS = 16


def ctl(arbiter: Arbiter, *command: str, timeout: float = 120) -> str:
    result = subprocess.run([str(ARBITER_BIN), "ctl", "--control", str(arbiter.control_path), *command],
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"ctl {' '.join(command)} exited {result.returncode}: {result.stderr}"
    return result.stdout


def ready_pids(arbiter: Arbiter) -> set[int]:
    status = json.loads(ctl(arbiter, "--json", "status"))
    return {worker["pid"] for worker in status["workers"] if worker["state"] == "ready"}


@pytest.fixture
def start_load(workdir):
    runs: list[LoadRun] = []

    def start(arbiter: Arbiter) -> LoadRun:
        run = LoadRun(str(TEST_PYTHON), arbiter.base_url() + "/", workdir, connections=CONNECTIONS,
                      close_connections=CONNECTIONS // 2, seconds=90)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.close()


# --------------------------------------------------------------------------------------------------
# Served, reloaded under load, stopped


@pytest.mark.parametrize("framework", ALL)
def test_framework_is_served_by_every_worker(arbiter, framework):
    arbiter.run(app=framework.app, workers=2)
    pids = arbiter.wait_ready(2)

    answered = arbiter.answering_pids(2)

    assert answered == pids
    reply = arbiter.get("/").json()
    assert reply["framework"] == framework.name


@pytest.mark.parametrize("framework", ALL)
def test_framework_reloads_under_load_without_a_failed_request(arbiter, start_load, framework):
    arbiter.run(app=framework.app, workers=2, extra=QUIET)
    old = arbiter.wait_ready(2)
    load = start_load(arbiter)
    load.wait_answered(300)

    ctl(arbiter, "reload")
    new = ready_pids(arbiter)
    load.wait_for(lambda figures: sum(figures["pids"].get(str(pid), 0) for pid in new) >= 200, 30,
                  f"200 answers from the new workers {sorted(new)}")
    report = load.stop()

    assert len(new) == 2 and not new & old, f"the reload kept a worker: {old} -> {new}"
    assert report["failed"] == 0, f"{report['failed']} of {report['total']} failed: {report}\n{arbiter.tail(60)}"
    assert {int(pid) for pid in report["pids"]} & old, "the load never reached the old workers"


@pytest.mark.parametrize("framework", ALL)
def test_framework_stops_gracefully_on_term_with_a_request_in_flight(arbiter, workdir, framework):
    arbiter.run(app=framework.app, workers=1, extra=["--graceful-timeout", "30"])
    arbiter.wait_ready(1)
    started = workdir / "started"
    outcome: dict = {}

    def slow_request() -> None:
        try:
            outcome["response"] = arbiter.get(f"/slow?s=2&started={started}", timeout=30)
        except Exception as error:  # noqa: BLE001  (reported by the assertion below)
            outcome["error"] = error
    thread = threading.Thread(target=slow_request)
    thread.start()
    try:
        wait_until(started.exists, 20, "the slow request to be in its handler")
        arbiter.signal(signal.SIGTERM)
        code = arbiter.wait_exit(40)
    finally:
        thread.join(30)

    assert code == 0, arbiter.tail(40)
    assert "response" in outcome, f"the request in flight failed: {outcome.get('error')!r}"
    assert outcome["response"].status_code == 200
    assert outcome["response"].json()["slept"] == 2


# --------------------------------------------------------------------------------------------------
# WebSockets


@pytest.mark.parametrize("framework", WITH_WEBSOCKETS)
def test_framework_websocket_echoes_messages(arbiter, framework):
    from websockets.sync.client import connect

    arbiter.run(app=framework.app, workers=1)
    arbiter.wait_ready(1)

    with connect(f"ws://{arbiter.bind}/ws", open_timeout=10, close_timeout=5) as websocket:
        replies = []
        for text in ("one", "two"):
            websocket.send(text)
            replies.append(websocket.recv(timeout=10))

    assert replies == [f"{framework.name}:one", f"{framework.name}:two"]


# --------------------------------------------------------------------------------------------------
# --lifespan auto|on|off, as uvicorn documents it


def served_startup_flag(arbiter: Arbiter) -> Optional[bool]:
    arbiter.wait_ready(1)
    return arbiter.get("/").json()["startup_ran"]


@pytest.mark.parametrize("mode", ["auto", "on"])
@pytest.mark.parametrize("framework", [pytest.param(f, id=f.name) for f in FRAMEWORKS if f.lifespan])
def test_lifespan_auto_and_on_run_the_apps_startup(arbiter, framework, mode):
    arbiter.run(app=framework.app, workers=1, extra=["--lifespan", mode])

    assert served_startup_flag(arbiter) is True


@pytest.mark.parametrize("framework", [pytest.param(f, id=f.name) for f in FRAMEWORKS if f.lifespan])
def test_lifespan_off_never_runs_the_apps_startup(arbiter, framework):
    arbiter.run(app=framework.app, workers=1, extra=["--lifespan", "off"])

    assert served_startup_flag(arbiter) is False


@pytest.mark.parametrize("mode", ["auto", "off"])
def test_django_without_lifespan_is_served_with_lifespan_auto_and_off(arbiter, mode):
    arbiter.run(app="frameworks.django_app:app", workers=1, extra=["--lifespan", mode])

    assert served_startup_flag(arbiter) is None
    if mode == "auto":
        wait_until(lambda: "ASGI 'lifespan' protocol appears unsupported" in arbiter.output(), 10,
                   "uvicorn's note that the app has no lifespan")


def test_django_with_lifespan_on_fails_to_boot_with_exit_3(arbiter):
    arbiter.run(app="frameworks.django_app:app", workers=1, extra=["--lifespan", "on"])

    assert arbiter.wait_exit(60) == 3
    assert "Django can only handle ASGI/HTTP connections, not lifespan" in arbiter.output(), arbiter.tail(40)
