"""Command-line options of the shim.

The arbiter passes uvicorn's own option names through, so the names, defaults and meanings here are
uvicorn's (``uvicorn --help``), plus the two the shim implements itself: ``--graceful-timeout`` (the
stop budget, counted from SIGTERM; the arbiter SIGKILLs 2 s after it) and ``--max-requests`` (ask to be replaced).
This module does not import uvicorn: it must work before the shim knows uvicorn is usable.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


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


def _zero_is_none(value: Any) -> Any:
    return value or None


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class UvicornOption:
    """One option passed through to uvicorn: its flag, how argparse reads it, and the uvicorn.Config
    keyword its value goes to (Options.config)."""

    flag: str
    keyword: str
    default: Any
    parse: Callable[[str], Any] | None = None
    """argparse's type; None for a switch (``action``)."""
    help: str | None = None
    choices: tuple[str, ...] | None = None
    action: str | type[argparse.Action] | None = None
    to_config: Callable[[Any], Any] = _same
    """From the parsed value to the Config keyword's (limit_concurrency: 0 is no limit, None)."""


UVICORN_OPTIONS: tuple[UvicornOption, ...] = (
    UvicornOption("--factory", "factory", False, action="store_true",
                  help="APP is a callable that returns the ASGI app"),
    UvicornOption("--loop", "loop", "auto", str, "event loop: auto, asyncio, uvloop, none, or module:factory"),
    UvicornOption("--http", "http", "auto", str, "HTTP/1.1 implementation", choices=("auto", "h11", "httptools")),
    UvicornOption("--ws", "ws", "auto", str,
                  "WebSocket implementation: auto, none, websockets, websockets-sansio, wsproto"),
    UvicornOption("--lifespan", "lifespan", "auto", str, choices=("auto", "on", "off")),
    UvicornOption("--proxy-headers", "proxy_headers", True, action=argparse.BooleanOptionalAction,
                  help="trust X-Forwarded-For/Proto from --forwarded-allow-ips"),
    UvicornOption("--forwarded-allow-ips", "forwarded_allow_ips", None, str,
                  "comma-separated addresses trusted for proxy headers"),
    UvicornOption("--root-path", "root_path", "", str, "ASGI root_path, for an app mounted below a path prefix"),
    UvicornOption("--timeout-keep-alive", "timeout_keep_alive", 5, _non_negative_int,
                  "seconds an idle keep-alive connection stays open"),
    UvicornOption("--limit-concurrency", "limit_concurrency", None, _non_negative_int,
                  "answer 503 above this many connections/tasks", to_config=_zero_is_none),
    UvicornOption("--log-level", "log_level", "info", str.lower, choices=LOG_LEVELS),
    UvicornOption("--access-log", "access_log", True, action=argparse.BooleanOptionalAction),
    # The arbiter's --backlog: uvicorn's create_server listens again on an adopted socket with its own
    # backlog, which would otherwise replace the arbiter's (--balance kernel).
    UvicornOption("--backlog", "backlog", 2048, _positive_int, "the listen queue the arbiter set (--backlog)"),
)
"""Adding a uvicorn option is adding a row here: the flag, the Options.config entry, the Config
keyword and uvicorn_contract.py's check of it all come from it."""

_PASSED = "uvicorn:"
"""The argparse dest prefix of UVICORN_OPTIONS, so parse_args can tell them from the shim's own."""


@dataclass(frozen=True)
class Options:
    app: str
    graceful_timeout: float
    max_requests: int
    config: Mapping[str, Any]
    """The uvicorn.Config keywords of UVICORN_OPTIONS, by keyword."""
    zygote: bool = False

    # What the shim itself reads of uvicorn's options.
    @property
    def loop(self) -> str:
        return str(self.config["loop"])

    @property
    def http(self) -> str:
        return str(self.config["http"])

    @property
    def ws(self) -> str:
        return str(self.config["ws"])

    @property
    def log_level(self) -> str:
        return str(self.config["log_level"])


def _add_uvicorn_option(parser: argparse.ArgumentParser, option: UvicornOption) -> None:
    settings: dict[str, Any] = {"dest": _PASSED + option.keyword, "default": option.default, "help": option.help}
    if option.action is not None:
        settings["action"] = option.action
    else:
        metavar = None if option.choices else option.keyword.upper()
        settings.update(type=option.parse, choices=option.choices, metavar=metavar)
    parser.add_argument(option.flag, **settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m arbiter_worker",
        description="Serve an ASGI app with uvicorn on the listening sockets inherited from arbiter.",
    )
    add = parser.add_argument
    add("app", metavar="APP", help="the ASGI app as module:attribute")
    for option in UVICORN_OPTIONS:
        _add_uvicorn_option(parser, option)
    add("--graceful-timeout", type=_non_negative_float, default=30.0,
        help="seconds allowed for the drain and lifespan shutdown after SIGTERM")
    add("--max-requests", type=_non_negative_int, default=0,
        help="ask the arbiter for a replacement after this many requests (0: never)")
    add("--zygote", action="store_true",
        help="fork server (arbiter --preload): import the app once, then fork workers on the arbiter's request")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> Options:
    """Parse the command line; on a usage error argparse prints why and exits 2."""
    values = vars(build_parser().parse_args(argv))
    config = {option.keyword: option.to_config(values.pop(_PASSED + option.keyword)) for option in UVICORN_OPTIONS}
    return Options(config=config, **values)
