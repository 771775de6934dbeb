"""Every uvicorn internal the shim relies on, in one list, checked before a worker serves.

The shim subclasses uvicorn's Server and protocols and reads their per-connection state
(server.py, heartbeat.py, worker.py, logs.py, protocols/). None of that is uvicorn's public API: a
release that renames one of these names would otherwise show up as failed requests during the next
deploy's drain. Instead ``contract_problem`` finds the missing name at worker start, and the shim
exits 4 naming the uvicorn version, the name and the fix (docs/worker-channel.md, "uvicorn versions").

Entry syntax, one string each:
- ``module:name``: a module attribute;
- ``module:Class.method()``: a method (or other class attribute) the shim overrides or calls;
  ``module:Class.method(param, ...)`` also requires these parameters, passed by keyword;
- ``module:Class.name``: an attribute of the instances. It is present when the class has it, or
  when the code of the class (its MRO within uvicorn) still mentions it: instance attributes are
  created in ``__init__`` and friends, where hasattr on the class cannot see them, and a rename
  removes the name from that code too.
Cheap: the code objects are already loaded; no source is read and nothing is instantiated.

Only what the worker will actually use is checked: the server part always, and the protocol part
for the ``--http`` and ``--ws`` implementations chosen (each needs its own optional library).
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import types
from collections.abc import Iterable, Iterator

from arbiter_worker.cli import UVICORN_OPTIONS
from arbiter_worker.requirements import supported_range

CONFIG_KEYWORDS = ", ".join(["app", *(option.keyword for option in UVICORN_OPTIONS), "log_config", "workers"])

SERVER = (
    # server.py: WorkerServer(uvicorn.Server) overrides these; uvicorn calls them with these keywords.
    "uvicorn.server:Server.serve(sockets)",
    "uvicorn.server:Server.startup(sockets)",
    "uvicorn.server:Server.shutdown(sockets)",
    "uvicorn.server:Server.on_tick()",
    "uvicorn.server:Server.capture_signals()",
    "uvicorn.server:Server.main_loop()",
    # server.py: the state it reads and sets.
    "uvicorn.server:Server.config",
    "uvicorn.server:Server.server_state",
    "uvicorn.server:Server.should_exit",
    "uvicorn.server:Server.force_exit",
    "uvicorn.server:Server.started",
    "uvicorn.server:Server.servers",
    "uvicorn.server:Server.lifespan",
    "uvicorn.lifespan.on:LifespanOn.should_exit",
    "uvicorn.lifespan.on:LifespanOn.shutdown()",
    # server.py (the drain) and heartbeat.py: what every connection and request shares.
    "uvicorn.server:ServerState.total_requests",
    "uvicorn.server:ServerState.connections",
    "uvicorn.server:ServerState.tasks",
    # server.py: the app is imported first, for full tracebacks.
    "uvicorn.importer:import_from_string",
    "uvicorn.importer:ImportFromStringError",
    # worker.py: Config takes the draining protocol classes and the options by these names (every
    # row of cli.UVICORN_OPTIONS); the event loop comes from get_loop_factory (uvicorn >= 0.36).
    f"uvicorn.config:Config.__init__({CONFIG_KEYWORDS})",
    "uvicorn.config:Config.load()",
    "uvicorn.config:Config.app",
    "uvicorn.config:Config.http_protocol_class",
    "uvicorn.config:Config.ws_protocol_class",
    "uvicorn.config:Config.get_loop_factory()",
    "uvicorn.config:LOG_LEVELS",
    # logs.py: uvicorn's formatters behind the worker prefix.
    "uvicorn.logging:DefaultFormatter",
    "uvicorn.logging:AccessFormatter",
)

_HTTP_COMMON = (
    # protocols/drain.py (HttpDrainMixin): the connection state the drain reads and the hooks it wraps.
    "{module}:{protocol}.data_received()",
    "{module}:{protocol}.connection_lost()",
    "{module}:{protocol}.shutdown()",
    "{module}:{protocol}.transport",
    "{module}:{protocol}.loop",
    "{module}:{protocol}.cycle",
    "{module}:{protocol}.timeout_keep_alive_task",
    "{module}:{protocol}.timeout_keep_alive_handler()",
    # protocols/drain.py (Cycle): what close_after_response changes on a request.
    "{module}:RequestResponseCycle.keep_alive",
    "{module}:RequestResponseCycle.response_started",
    "{module}:RequestResponseCycle.response_complete",
    "{module}:RequestResponseCycle.default_headers",
)

PROTOCOLS = {
    "http:h11": tuple(
        entry.format(module="uvicorn.protocols.http.h11_impl", protocol="H11Protocol") for entry in _HTTP_COMMON
    ),
    "http:httptools": tuple(
        entry.format(module="uvicorn.protocols.http.httptools_impl", protocol="HttpToolsProtocol")
        for entry in _HTTP_COMMON
    )
    # protocols/httptools_drain.py: pipelined requests wait here, newest first.
    + ("uvicorn.protocols.http.httptools_impl:HttpToolsProtocol.pipeline",),
    # protocols/__init__.py: --ws auto is resolved to the class uvicorn would pick.
    "ws:auto": ("uvicorn.protocols.websockets.auto:AutoWebSocketsProtocol",),
    # protocols/websockets_drain.py (stop_keepalive is optional: uvicorn < 0.44 has no pings).
    "ws:websockets-sansio": tuple(
        f"uvicorn.protocols.websockets.websockets_sansio_impl:WebSocketsSansIOProtocol.{name}"
        for name in ("shutdown()", "transport", "conn", "queue", "close_sent", "handshake_complete")
    ),
    # protocols/websockets_legacy_drain.py.
    "ws:websockets": tuple(
        f"uvicorn.protocols.websockets.websockets_impl:WebSocketProtocol.{name}"
        for name in ("shutdown()", "transport", "handshake_completed_event", "ws_server", "fail_connection()")
    )
    + ("uvicorn.protocols.websockets.websockets_impl:Server.closing",),
    # server.py: a protocol without begin_drain is closed with uvicorn's own shutdown().
    "ws:wsproto": ("uvicorn.protocols.websockets.wsproto_impl:WSProtocol.shutdown()",),
}

_ENTRY = re.compile(r"(?P<module>[\w.]+):(?P<owner>\w+)(?:\.(?P<name>\w+))?(?:\((?P<params>[^)]*)\))?")


def _code_names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _code_names(constant)


def _mentioned_by(cls: type) -> set[str]:
    """Every attribute name the code of `cls` and its uvicorn bases mentions (self.x = ..., self.x)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("uvicorn"):
            continue
        for member in vars(klass).values():
            if isinstance(member, property):
                member = member.fget
            member = getattr(member, "__func__", member)  # staticmethod, classmethod
            if isinstance(member, types.FunctionType):
                names.update(_code_names(inspect.unwrap(member).__code__))
    return names


class _Lookups:
    """What one check has imported and scanned already, so each module and class is read once."""

    def __init__(self) -> None:
        self.modules: dict[str, types.ModuleType | None] = {}
        self.mentioned: dict[type, set[str]] = {}

    def module(self, name: str) -> types.ModuleType | None:
        if name not in self.modules:
            try:
                self.modules[name] = importlib.import_module(name)
            except ImportError:
                self.modules[name] = None
        return self.modules[name]

    def mentions(self, cls: type, name: str) -> bool:
        if cls not in self.mentioned:
            self.mentioned[cls] = _mentioned_by(cls)
        return name in self.mentioned[cls]


def _missing_in(entry: str, lookups: _Lookups) -> str | None:
    """None when `entry` holds for the installed uvicorn, else what is missing, for the message."""
    match = _ENTRY.fullmatch(entry)
    if match is None:
        raise ValueError(f"malformed uvicorn contract entry {entry!r}")
    module_name, owner_name, name, params = match.group("module", "owner", "name", "params")
    module = lookups.module(module_name)
    if module is None:
        return f"module {module_name}"
    owner = getattr(module, owner_name, None)
    if owner is None:
        return f"{module_name}.{owner_name}"
    if name is None:
        return None
    if hasattr(owner, name):
        pass
    elif params is not None or not isinstance(owner, type) or not lookups.mentions(owner, name):
        return f"{module_name}.{owner_name}.{name}"
    if not params:
        return None
    try:
        accepted = inspect.signature(getattr(owner, name)).parameters
    except (TypeError, ValueError):
        return f"{module_name}.{owner_name}.{name} (its signature cannot be read)"
    absent = [param.strip() for param in params.split(",") if param.strip() not in accepted]
    if absent:
        return f"{module_name}.{owner_name}.{name}(…) parameter{'s' if len(absent) > 1 else ''} {', '.join(absent)}"
    return None


def missing_internals(entries: Iterable[str]) -> list[str]:
    """What of `entries` the installed uvicorn lacks (empty when it has everything)."""
    lookups = _Lookups()
    return [missing for missing in (_missing_in(entry, lookups) for entry in entries) if missing is not None]


def groups_for(http: str, ws: str) -> list[str]:
    """The PROTOCOLS groups a worker uses with these resolved --http and --ws implementations."""
    groups = [f"http:{http}"]
    if f"ws:{ws}" in PROTOCOLS:
        groups.append(f"ws:{ws}")
    return groups


def contract_problem(http: str, ws: str) -> str | None:
    """None if uvicorn has everything a worker with this --http/--ws uses, else the exit-4 message.

    `ws` may be "auto": resolving it needs uvicorn's auto module, so that part is checked first.
    """
    from arbiter_worker.protocols import http_implementation, websocket_implementation

    missing = missing_internals(SERVER)
    if ws == "auto":
        missing += missing_internals(PROTOCOLS["ws:auto"])
    if not missing:
        resolved_ws = websocket_implementation(ws)
        for group in groups_for(http_implementation(http), resolved_ws):
            missing += missing_internals(PROTOCOLS[group])
    if not missing:
        return None
    import uvicorn

    version = getattr(uvicorn, "__version__", "(unknown version)")
    low, high = supported_range()
    return (
        f"arbiter_worker: uvicorn {version} at {uvicorn.__file__} lacks what the worker shim relies on: "
        f"{'; '.join(missing)}.\n"
        f"This arbiter supports uvicorn >={low},<{high}; fix: {sys.executable} -m pip install "
        f"'uvicorn[standard]>={low},<{high}'"
    )
