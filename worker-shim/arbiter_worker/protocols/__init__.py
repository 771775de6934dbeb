"""uvicorn's HTTP and WebSocket protocols, subclassed to drain gracefully (see drain.py).

Only the implementation actually selected is imported, because each one needs its own optional
library (httptools, h11, websockets).
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import uvicorn
    from uvicorn.server import ServerState


def http_implementation(name: str) -> str:
    """``--http`` with auto resolved: httptools when it is installed (like uvicorn), else h11."""
    if name == "auto":
        return "httptools" if importlib.util.find_spec("httptools") is not None else "h11"
    return name


def websocket_implementation(name: str) -> str:
    """``--ws`` with auto resolved to the implementation uvicorn's auto picks, or "none"."""
    if name != "auto":
        return name
    from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol

    if AutoWebSocketsProtocol is None:
        return "none"
    if AutoWebSocketsProtocol.__module__.endswith("websockets_sansio_impl"):
        return "websockets-sansio"
    if AutoWebSocketsProtocol.__module__.endswith("websockets_impl"):
        return "websockets"
    return name


def http_protocol_class(name: str) -> type[asyncio.Protocol]:
    """The draining subclass for ``--http`` auto, httptools or h11."""
    if http_implementation(name) == "httptools":
        from arbiter_worker.protocols.httptools_drain import DrainingHttpToolsProtocol

        return DrainingHttpToolsProtocol
    from arbiter_worker.protocols.h11_drain import DrainingH11Protocol

    return DrainingH11Protocol


def websocket_protocol_class(name: str) -> type[asyncio.Protocol] | str:
    """The draining subclass for ``--ws``, or uvicorn's own name when there is no subclass for it."""
    name = websocket_implementation(name)
    if name == "websockets-sansio":
        from arbiter_worker.protocols.websockets_drain import DrainingWebSocketsSansIOProtocol

        return DrainingWebSocketsSansIOProtocol
    if name == "websockets":
        from arbiter_worker.protocols.websockets_legacy_drain import DrainingWebSocketProtocol

        return DrainingWebSocketProtocol
    # wsproto, "none", or a custom module:Class: uvicorn's own class (its shutdown sends close code 1012).
    return name


def protocol_factory(
    config: uvicorn.Config, server_state: ServerState, app_state: dict[str, Any]
) -> Callable[[], asyncio.Protocol]:
    """The protocol factory for connections the shim hands to uvicorn itself (the even policy's
    accepts, the stop's sweep of the queues): what uvicorn's startup passes to create_server."""

    def create_protocol() -> asyncio.Protocol:
        return config.http_protocol_class(  # type: ignore[call-arg]
            config=config, server_state=server_state, app_state=app_state
        )

    return create_protocol
