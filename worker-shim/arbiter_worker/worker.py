"""Wire one worker together: sockets, logging, uvicorn.Config, the server, the event loop.

Imported only once uvicorn is known to be usable (requirements.py) and to have every internal the
shim relies on (uvicorn_contract.py); returns the exit code.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn.config import LOG_LEVELS

from arbiter_worker import exits
from arbiter_worker.board import Board, BoardInvalid
from arbiter_worker.channel import Channel
from arbiter_worker.cli import Options
from arbiter_worker.environment import WorkerEnvironment
from arbiter_worker.logs import SHIM_LOGGER, logging_config
from arbiter_worker.protocols import http_protocol_class, websocket_protocol_class
from arbiter_worker.server import WorkerServer
from arbiter_worker.sockets import SocketInvalid, adopt_listeners


def build_config(options: Options, environment: WorkerEnvironment, logging_applied: bool = False) -> uvicorn.Config:
    """logging_applied: a forked worker, whose zygote configured logging before the app's import; uvicorn
    then only applies --log-level and --access-log (a dictConfig would close the app's handlers).
    The keywords are those of cli.UVICORN_OPTIONS, with the draining protocol classes for --http and --ws."""
    keywords: dict[str, Any] = dict(options.config)
    keywords.update(http=http_protocol_class(options.http), ws=websocket_protocol_class(options.ws))
    return uvicorn.Config(
        app=options.app,
        **keywords,
        log_config=None if logging_applied else logging_config(environment.log_format, environment.worker_id),
        workers=1,  # one process: ignore WEB_CONCURRENCY, which is the arbiter's business
    )


def run_event_loop(
    server: WorkerServer,
    sockets: list[socket.socket],
    factory: Callable[[], asyncio.AbstractEventLoop] | None,
) -> None:
    """asyncio.run(server.serve()) on the loop --loop asks for (asyncio.run has no loop_factory before 3.12)."""
    loop = factory() if factory is not None else asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(server.serve(sockets=sockets))
        leftovers = asyncio.all_tasks(loop)
        for task in leftovers:
            task.cancel()
        if leftovers:
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def run(options: Options, environment: WorkerEnvironment, channel: Channel, forked: bool = False) -> int:
    try:
        listeners = adopt_listeners(environment.listen_fds)
    except (SocketInvalid, OSError) as exc:
        print(f"arbiter_worker: {exc}; the arbiter must pass listening sockets (ARBITER_LISTEN_FDS) and the channel",
              file=sys.stderr)
        return exits.USAGE
    try:
        board = Board.adopt(environment.board_fd, environment.board_index)
    except (BoardInvalid, OSError) as exc:
        print(f"arbiter_worker: {exc}; the arbiter must pass its board after the channel", file=sys.stderr)
        return exits.USAGE

    config = build_config(options, environment, logging_applied=forked)
    logging.getLogger(SHIM_LOGGER).setLevel(min(LOG_LEVELS[options.log_level], logging.ERROR))
    server = WorkerServer(
        config,
        channel,
        heartbeat_interval=environment.heartbeat_interval,
        graceful_timeout=options.graceful_timeout,
        max_requests=options.max_requests,
        board=board,
        balance=environment.balance,
    )
    run_event_loop(server, listeners, config.get_loop_factory())
    return exits.BOOT_FAILED if server.boot_failed else exits.STOPPED
