"""Command-line options of the shim.

The arbiter passes uvicorn's own option names through, so the names, defaults and meanings here are
uvicorn's (``uvicorn --help``), plus the two the shim implements itself: ``--graceful-timeout`` (the
stop budget, counted from SIGTERM; the arbiter SIGKILLs 2 s after it) and ``--max-requests`` (ask to be replaced).
This module does not import uvicorn: it must work before the shim knows uvicorn is usable.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


@dataclass(frozen=True)
class Options:
    app: str
    factory: bool
    loop: str
    http: str
    ws: str
    lifespan: str
    proxy_headers: bool
    forwarded_allow_ips: str | None
    root_path: str
    timeout_keep_alive: int
    limit_concurrency: int | None
    log_level: str
    access_log: bool
    graceful_timeout: float
    max_requests: int
    zygote: bool = False
    backlog: int = 2048
    """The arbiter's --backlog: uvicorn's create_server listens again on an adopted socket with its
    own backlog, which would otherwise replace the arbiter's (--balance kernel)."""


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m arbiter_worker",
        description="Serve an ASGI app with uvicorn on the listening sockets inherited from arbiter.",
    )
    add = parser.add_argument
    add("app", metavar="APP", help="the ASGI app as module:attribute")
    add("--factory", action="store_true", help="APP is a callable that returns the ASGI app")
    add("--loop", default="auto", help="event loop: auto, asyncio, uvloop, none, or module:factory")
    add("--http", default="auto", choices=("auto", "h11", "httptools"), help="HTTP/1.1 implementation")
    add("--ws", default="auto", help="WebSocket implementation: auto, none, websockets, websockets-sansio, wsproto")
    add("--lifespan", default="auto", choices=("auto", "on", "off"))
    add("--proxy-headers", action=argparse.BooleanOptionalAction, default=True,
        help="trust X-Forwarded-For/Proto from --forwarded-allow-ips")
    add("--forwarded-allow-ips", default=None, help="comma-separated addresses trusted for proxy headers")
    add("--root-path", default="", help="ASGI root_path, for an app mounted below a path prefix")
    add("--timeout-keep-alive", type=_non_negative_int, default=5, help="seconds an idle keep-alive connection stays open")
    add("--limit-concurrency", type=_non_negative_int, default=None, help="answer 503 above this many connections/tasks")
    add("--log-level", default="info", choices=LOG_LEVELS, type=str.lower)
    add("--access-log", action=argparse.BooleanOptionalAction, default=True)
    add("--graceful-timeout", type=_non_negative_float, default=30.0,
        help="seconds allowed for the drain and lifespan shutdown after SIGTERM")
    add("--max-requests", type=_non_negative_int, default=0,
        help="ask the arbiter for a replacement after this many requests (0: never)")
    add("--backlog", type=_positive_int, default=2048, help="the listen queue the arbiter set (--backlog)")
    add("--zygote", action="store_true",
        help="fork server (arbiter --preload): import the app once, then fork workers on the arbiter's request")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> Options:
    """Parse the command line; on a usage error argparse prints why and exits 2."""
    namespace = build_parser().parse_args(argv)
    return Options(
        app=namespace.app,
        factory=namespace.factory,
        loop=namespace.loop,
        http=namespace.http,
        ws=namespace.ws,
        lifespan=namespace.lifespan,
        proxy_headers=namespace.proxy_headers,
        forwarded_allow_ips=namespace.forwarded_allow_ips,
        root_path=namespace.root_path,
        timeout_keep_alive=namespace.timeout_keep_alive,
        limit_concurrency=namespace.limit_concurrency or None,
        log_level=namespace.log_level,
        access_log=namespace.access_log,
        graceful_timeout=namespace.graceful_timeout,
        max_requests=namespace.max_requests,
        zygote=namespace.zygote,
        backlog=namespace.backlog,
    )
