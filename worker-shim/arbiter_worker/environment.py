"""The ARBITER_* environment the arbiter sets for every worker (docs/worker-channel.md, "Environment").

Variables are validated here once, so the rest of the shim works with typed values. Without
ARBITER_CHANNEL_FD the shim still serves (handy when debugging by hand); messages are then dropped.

An exec'd worker has its listeners at fds 3..3+L-1 (ARBITER_LISTEN_FDS=L). A worker forked by a
zygote keeps every descriptor where the zygote received it, because the numbers below them may be
the app's (files, sockets, mmaps it opened at import): it lists them in ARBITER_LISTEN_FD_NUMBERS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

FIRST_LISTEN_FD = 3
DEFAULT_HEARTBEAT_INTERVAL = 5.0


class EnvironmentInvalid(Exception):
    """An ARBITER_* variable is malformed: the arbiter (or whoever started us) has a bug."""


@dataclass(frozen=True)
class WorkerEnvironment:
    listen_fds: tuple[int, ...]
    channel_fd: int | None
    arbiter_pid: int | None
    worker_id: str
    generation: str
    heartbeat_interval: float
    log_format: str
    log_file: str | None = None
    balance: str = "kernel"
    board_fd: int | None = None
    board_index: int | None = None
    uid: int | None = None
    """--user: the uid the worker must be running as (`arbiter exec-worker` dropped to it)."""


def _spell(fds: tuple[int, ...]) -> str:
    if fds and fds == tuple(range(fds[0], fds[0] + len(fds))):
        return f"{fds[0]}..{fds[-1]}"
    return ",".join(map(str, fds))


def _integer(environ: Mapping[str, str], name: str, minimum: int) -> int | None:
    text = environ.get(name)
    if text is None or text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        raise EnvironmentInvalid(f"{name}={text!r} is not an integer") from None
    if value < minimum:
        raise EnvironmentInvalid(f"{name}={text!r} must be >= {minimum}")
    return value


def _listen_fds(environ: Mapping[str, str]) -> tuple[int, ...]:
    listen_count = _integer(environ, "ARBITER_LISTEN_FDS", 0) or 0
    numbers = environ.get("ARBITER_LISTEN_FD_NUMBERS")
    if not numbers:
        return tuple(range(FIRST_LISTEN_FD, FIRST_LISTEN_FD + listen_count))
    try:
        fds = tuple(int(part) for part in numbers.split(","))
    except ValueError:
        raise EnvironmentInvalid(f"ARBITER_LISTEN_FD_NUMBERS={numbers!r} is not a comma-separated list of fds") from None
    if len(fds) != listen_count or len(set(fds)) != len(fds) or min(fds) < FIRST_LISTEN_FD:
        raise EnvironmentInvalid(
            f"ARBITER_LISTEN_FD_NUMBERS={numbers!r} must list ARBITER_LISTEN_FDS={listen_count} distinct fds >= 3"
        )
    return fds


def parse_environment(environ: Mapping[str, str]) -> WorkerEnvironment:
    listen_fds = _listen_fds(environ)
    channel_fd = _integer(environ, "ARBITER_CHANNEL_FD", 0)
    if channel_fd is not None and channel_fd in listen_fds:
        raise EnvironmentInvalid(f"ARBITER_CHANNEL_FD={channel_fd} overlaps the listening fds {_spell(listen_fds)}")
    interval_text = environ.get("ARBITER_HEARTBEAT_INTERVAL") or str(DEFAULT_HEARTBEAT_INTERVAL)
    try:
        interval = float(interval_text)
    except ValueError:
        raise EnvironmentInvalid(f"ARBITER_HEARTBEAT_INTERVAL={interval_text!r} is not a number") from None
    if not interval > 0:
        raise EnvironmentInvalid(f"ARBITER_HEARTBEAT_INTERVAL={interval_text!r} must be > 0")
    balance = environ.get("ARBITER_BALANCE") or "kernel"
    if balance not in ("even", "kernel"):
        raise EnvironmentInvalid(f"ARBITER_BALANCE={balance!r} must be even or kernel")
    board_fd = _integer(environ, "ARBITER_BOARD_FD", 0)
    if board_fd is not None and (board_fd == channel_fd or board_fd in listen_fds):
        raise EnvironmentInvalid(f"ARBITER_BOARD_FD={board_fd} overlaps the listening fds or the channel")
    log_format = environ.get("ARBITER_LOG_FORMAT") or "text"
    if log_format not in ("text", "json"):
        raise EnvironmentInvalid(f"ARBITER_LOG_FORMAT={log_format!r} must be text or json")
    return WorkerEnvironment(
        listen_fds=listen_fds,
        channel_fd=channel_fd,
        arbiter_pid=_integer(environ, "ARBITER_PID", 1),
        worker_id=environ.get("ARBITER_WORKER_ID") or "?",
        generation=environ.get("ARBITER_GENERATION") or "0",
        heartbeat_interval=interval,
        log_format=log_format,
        log_file=environ.get("ARBITER_LOG_FILE") or None,
        balance=balance,
        board_fd=board_fd,
        board_index=_integer(environ, "ARBITER_BOARD_INDEX", 1),
        uid=_integer(environ, "ARBITER_UID", 0),
    )
