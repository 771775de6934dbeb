"""The uvicorn contract (docs/worker-channel.md, "uvicorn versions"): the supported range, and the
self-check that every uvicorn internal the shim relies on exists before a worker serves.

The unit tests remove one name from the installed uvicorn (monkeypatch, undone after each test) and
read the message; the last tests do the same to a real worker through sitecustomize.
"""

from __future__ import annotations

import importlib.util
import re
import signal
import sys
import tomllib
from pathlib import Path

import pytest
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import Server, ServerState

from arbiter_worker.requirements import MINIMUM_UVICORN, supported_range, uvicorn_problem, uvicorn_warning
from arbiter_worker.uvicorn_contract import PROTOCOLS, SERVER, contract_problem, missing_internals
from harness import SHIM_DIR, Worker, tcp_listener

REPO = SHIM_DIR.parent

# The optional library each protocol group needs; a group whose library is absent is never used.
GROUP_LIBRARIES = {
    "http:h11": "h11", "http:httptools": "httptools", "ws:auto": "uvicorn", "ws:websockets-sansio": "websockets",
    "ws:websockets": "websockets", "ws:wsproto": "wsproto",
}


# Importing the legacy websockets implementation warns: uvicorn (its own class) and websockets.
@pytest.mark.filterwarnings("ignore:The `websockets` implementation is deprecated")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("group", ["server", *PROTOCOLS])
def test_the_installed_uvicorn_has_every_internal_the_shim_relies_on(group: str) -> None:
    if group != "server" and importlib.util.find_spec(GROUP_LIBRARIES[group]) is None:
        pytest.skip(f"{GROUP_LIBRARIES[group]} is not installed, so {group} is never used here")
    entries = SERVER if group == "server" else PROTOCOLS[group]

    assert missing_internals(entries) == []


def test_every_protocol_group_has_its_library_listed_here() -> None:
    assert set(PROTOCOLS) == set(GROUP_LIBRARIES)


def test_a_removed_server_method_is_named_with_the_uvicorn_version_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(Server, "on_tick")

    problem = contract_problem("h11", "none")

    assert problem is not None
    assert f"uvicorn {uvicorn.__version__} at " in problem
    assert "uvicorn.server.Server.on_tick" in problem
    low, high = supported_range()
    assert f"-m pip install 'uvicorn[standard]>={low},<{high}'" in problem


def test_a_removed_instance_attribute_is_found_through_the_code_of_its_class(monkeypatch: pytest.MonkeyPatch) -> None:
    def init_without_tasks(self: ServerState) -> None:
        self.total_requests = 0
        self.connections = set()

    monkeypatch.setattr(ServerState, "__init__", init_without_tasks)

    problem = contract_problem("h11", "none")

    assert problem is not None and "uvicorn.server.ServerState.tasks" in problem
    assert "ServerState.connections" not in problem


def test_a_renamed_keyword_parameter_of_an_overridden_method_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    async def shutdown(self: Server, listeners: object = None) -> None:
        pass

    monkeypatch.setattr(Server, "shutdown", shutdown)

    problem = contract_problem("h11", "none")

    assert problem is not None and "uvicorn.server.Server.shutdown(…) parameter sockets" in problem


def test_protocol_internals_are_checked_only_for_the_chosen_implementation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(HttpToolsProtocol, "timeout_keep_alive_handler")

    problem = contract_problem("httptools", "none")

    assert problem is not None
    assert "uvicorn.protocols.http.httptools_impl.HttpToolsProtocol.timeout_keep_alive_handler" in problem
    assert contract_problem("h11", "none") is None


def test_auto_http_is_checked_as_the_implementation_uvicorn_would_pick(monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = HttpToolsProtocol if importlib.util.find_spec("httptools") is not None else H11Protocol
    monkeypatch.delattr(chosen, "timeout_keep_alive_handler")

    problem = contract_problem("auto", "none")

    assert problem is not None and f"{chosen.__name__}.timeout_keep_alive_handler" in problem


def test_a_missing_uvicorn_module_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn.protocols.websockets.auto", None)  # import raises ImportError

    problem = contract_problem("h11", "auto")

    assert problem is not None and "module uvicorn.protocols.websockets.auto" in problem


def test_uvicorn_older_than_the_minimum_is_refused_with_the_pip_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uvicorn, "__version__", "0.35.0")

    problem = uvicorn_problem()

    low, high = supported_range()
    assert problem is not None and "uvicorn 0.35.0" in problem and "too old" in problem
    assert f"-m pip install 'uvicorn[standard]>={low},<{high}'" in problem


def test_uvicorn_newer_than_the_tested_range_only_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    low, high = supported_range()
    monkeypatch.setattr(uvicorn, "__version__", f"{high}.0")

    warning = uvicorn_warning()

    assert uvicorn_problem() is None
    assert warning is not None and f"uvicorn {high}.0 is newer than this arbiter was tested with" in warning
    assert f"'uvicorn[standard]>={low},<{high}'" in warning


def test_uvicorn_inside_the_tested_range_gets_no_warning() -> None:
    assert uvicorn_warning() is None


def test_the_declared_uvicorn_bounds_match_the_shim() -> None:
    low, high = supported_range()
    for pyproject in (SHIM_DIR / "pyproject.toml", REPO / "pyproject.toml"):
        project = tomllib.loads(pyproject.read_text())["project"]
        declared = [*project["dependencies"], *project["optional-dependencies"]["standard"]]
        assert [d for d in declared if d.startswith("uvicorn")] == [
            f"uvicorn>={low},<{high}", f"uvicorn[standard]>={low},<{high}"
        ], pyproject
    lowest = (REPO / "tests" / "requirements-lowest.txt").read_text()
    assert re.search(rf"^uvicorn\[standard\]=={re.escape(low)}$", lowest, re.MULTILINE)
    assert MINIMUM_UVICORN == tuple(int(part) for part in low.split("."))


# --- through a real worker ---------------------------------------------------------------------


def worker_with_patched_uvicorn(tmp_path: Path, patch: str) -> Worker:
    """A worker whose uvicorn is changed by `patch` (Python run at interpreter start-up)."""
    (tmp_path / "sitecustomize.py").write_text(patch)
    return Worker("shim_hello:app", [tcp_listener()], env={"PYTHONPATH": f"{SHIM_DIR}:{tmp_path}"})


def test_worker_exits_4_naming_a_missing_uvicorn_internal_before_serving(tmp_path: Path) -> None:
    worker = worker_with_patched_uvicorn(tmp_path, "import uvicorn.server\ndel uvicorn.server.Server.on_tick\n")

    worker.process.wait(timeout=30)
    worker.pump(0.2)
    code, _, err = worker.finish()

    assert code == 4
    assert f"uvicorn {uvicorn.__version__} at " in err and "uvicorn.server.Server.on_tick" in err
    assert [message["type"] for message in worker.messages] == ["hello"]  # never ready


def test_worker_with_a_newer_uvicorn_warns_and_serves(tmp_path: Path) -> None:
    high = supported_range()[1]
    worker = worker_with_patched_uvicorn(tmp_path, f"import uvicorn\nuvicorn.__version__ = '{high}.0'\n")

    worker.wait_for("ready")
    worker.signal(signal.SIGTERM)
    code, _, err = worker.finish()

    assert code == 0
    assert f"warning: uvicorn {high}.0 is newer than this arbiter was tested with" in err
