"""uvicorn.Server, subclassed for life under the arbiter.

What changes compared with uvicorn's own Server:
- ``serve``: the channel watch and heartbeats start as soon as the loop runs (before the app is
  even imported), and the app is imported here first so a failure prints a full traceback and
  becomes exit 3 instead of uvicorn's one-line log and sys.exit(1)/(3).
- ``startup``: ``ready`` is sent only once lifespan startup finished and every socket is served;
  uvicorn's sys.exit(3) on a failed lifespan startup becomes ``boot_failed``.
- ``capture_signals``: TERM drains, INT and QUIT stop quickly, and nothing is re-raised afterwards
  (uvicorn re-raises the captured signal, which would turn a clean stop into death by SIGTERM).
- ``on_tick``: ``retire`` once after --max-requests (uvicorn's limit_max_requests would exit instead).
- ``shutdown``: the graceful drain (stopping.py, protocols/drain.py) bounded by --graceful-timeout,
  then lifespan shutdown, instead of closing idle keep-alive connections at once.
- with a board (board.py): the open connections, requests in flight and event-loop lag are published
  there (report.py), and with ``ARBITER_BALANCE=even`` the shim accepts itself (accept.py's
  EvenBalance) instead of the event loop's server, so the workers share the accept queue evenly.

Each of those is its own object; this class only calls them at the points uvicorn's Server offers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Generator, Mapping
from types import FrameType

import uvicorn
from uvicorn.importer import ImportFromStringError, import_from_string

from arbiter_worker import exits
from arbiter_worker.accept import EvenBalance
from arbiter_worker.board import Board
from arbiter_worker.channel import Channel
from arbiter_worker.heartbeat import Heartbeat
from arbiter_worker.logs import SHIM_LOGGER, adopt_log_file
from arbiter_worker.protocols import protocol_factory
from arbiter_worker.report import BoardReport
from arbiter_worker.sockets import describe
from arbiter_worker.stopping import Drain

logger = logging.getLogger(SHIM_LOGGER)


class WorkerServer(uvicorn.Server):
    def __init__(
        self,
        config: uvicorn.Config,
        channel: Channel,
        heartbeat_interval: float,
        graceful_timeout: float,
        max_requests: int,
        board: Board | None = None,
        balance: str = "kernel",
    ) -> None:
        super().__init__(config)
        self.boot_failed = False
        self._channel = channel
        self._heartbeat = Heartbeat(channel, heartbeat_interval, self.server_state)
        self._max_requests = max_requests
        self._retire_sent = False
        self._stop_requested: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._balance = EvenBalance(board) if board is not None and balance == "even" else None
        self._report = BoardReport(board, self._balance) if board is not None else None
        if self._report is not None:
            self.server_state.connections = self._report.connections
        self._drain = Drain(self, graceful_timeout, self._balance, self._protocol_factory)

    # --- life cycle -------------------------------------------------------------------------

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._channel.attach(self._loop, self._arbiter_lost, self._on_arbiter_message)
        self._heartbeat.start(asyncio.get_running_loop())
        try:
            with self.capture_signals():
                if not self._load_app():
                    self.boot_failed = True
                    return
                if self.should_exit:
                    return
                await super().serve(sockets=sockets)
        finally:
            self._heartbeat.stop()
            self._channel.detach()

    def _load_app(self) -> bool:
        """Import the app (and call the factory) with full tracebacks; False if it cannot boot."""
        app = self.config.app
        try:
            import_from_string(app)
        except ImportFromStringError as exc:
            logger.error("Cannot load the app %r: %s", app, exc)
            return False
        except BaseException:
            logger.exception("The app %r raised while being imported", app)
            return False
        try:
            self.config.load()
        except SystemExit:
            logger.error("Cannot load the app %r (see the message above)", app)
            return False
        except BaseException:
            logger.exception("Cannot load the app %r", app)
            return False
        return True

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        # A stop requested while lifespan startup runs abandons the boot (nothing was served, so
        # there is nothing to drain) instead of waiting for a slow startup to finish.
        loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        booting = loop.create_task(self._startup_or_exit(sockets))
        stopping = loop.create_task(self._stop_requested.wait())
        await asyncio.wait({booting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not booting.done():
            logger.info("Stop requested while the app was booting: exiting without serving")
            booting.cancel()
            await asyncio.wait({booting})
            self.should_exit = True
            return
        booting.result()
        if self.lifespan.should_exit:
            # The traceback has been logged by uvicorn's lifespan (or by Starlette's lifespan message).
            logger.error("The app failed to boot: lifespan startup failed")
            self.boot_failed = True
            self.should_exit = True
            return
        if not self.started or self.should_exit:
            return
        if self._balance is not None:
            self._balance.start(loop, list(sockets or []), self._protocol_factory(),
                                lambda: len(self.server_state.connections))
        for sock in sockets or []:
            logger.info("Serving on %s", describe(sock))
        self._channel.send({"type": "ready", "pid": os.getpid()})

    async def _startup_or_exit(self, sockets: list[socket.socket] | None) -> None:
        try:
            # Even balance: the shim's acceptor starts once lifespan startup is done, like uvicorn's would.
            await super().startup(sockets=self._balance.uvicorn_sockets(sockets) if self._balance else sockets)
        except SystemExit:
            pass  # uvicorn >= 0.37 exits on a failed lifespan startup; older ones only set should_exit

    def _protocol_factory(self) -> Callable[[], asyncio.Protocol]:
        return protocol_factory(self.config, self.server_state, self.lifespan.state)

    async def on_tick(self, counter: int) -> bool:
        if self._report is not None:
            self._report.tick(asyncio.get_running_loop().time(), len(self.server_state.tasks))
        if self._balance is not None:
            self._balance.tick(self.server_state.connections)
        if self._max_requests and not self._retire_sent and self.server_state.total_requests >= self._max_requests:
            self._retire_sent = True
            logger.info("Served %d requests (--max-requests): asking to be replaced", self._max_requests)
            self._channel.send({"type": "retire", "reason": "max-requests"})
        return await super().on_tick(counter)

    # --- signals ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handlers = {
            signal.SIGTERM: self._request_graceful_stop,
            signal.SIGINT: self._request_quick_stop,
            signal.SIGQUIT: self._request_quick_stop,
        }
        previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _request_graceful_stop(self, sig: int, frame: FrameType | None) -> None:
        self._drain.signalled()
        self.should_exit = True
        self._wake_startup()

    def _request_quick_stop(self, sig: int, frame: FrameType | None) -> None:
        self.should_exit = True
        self.force_exit = True
        self._wake_startup()

    def _wake_startup(self) -> None:
        if self._stop_requested is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop_requested.set)

    def _on_arbiter_message(self, message: Mapping[str, object], files: list[int]) -> None:
        if message.get("type") == "log_file" and files:
            adopt_log_file(files.pop(0))
            logger.debug("Writing to the log file the arbiter reopened")
        elif message.get("type") == "drain":
            self._drain.announced(restart=message.get("reason") == "restart")
        else:
            logger.debug("Ignoring a message from the arbiter: %.80r", message)
        for fd in files:
            os.close(fd)

    def _arbiter_lost(self) -> None:
        logger.error("The arbiter closed the channel (it died): exiting now")
        os._exit(exits.PARENT_GONE)

    # --- the drain (stopping.py) ------------------------------------------------------------

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self._drain.run(sockets)
