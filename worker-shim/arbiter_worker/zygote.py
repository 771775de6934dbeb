"""Zygote mode (``python -m arbiter_worker --zygote``): import the app once, fork workers on request.

The arbiter starts one zygote per app generation when it runs with ``--preload``. The zygote:

1. configures logging as an exec'd worker's uvicorn would (logs.py), before the app, so the handlers
   the app adds at import come after ours and survive in every worker;
2. imports the app module (no event loop, no lifespan) and the uvicorn modules the workers use, with
   the garbage collector off (a big import otherwise pays for many full collections);
3. judges whether what the import started survives a fork (forksafety.py): refuses, naming the
   thread or OpenMP and the fix, with ``{"type":"zygote_refused","summary":...}`` then exit 3;
   warns about native threads nobody can account for, and goes on;
4. runs ``gc.collect()`` then ``gc.freeze()``: the surviving objects move to a generation the
   collector never walks, so a collection in a worker never writes to (and so never un-shares) the
   pages the workers share with the zygote;
5. sends ``{"type":"zygote_ready","import_seconds":S}`` and then forks one worker per
   ``{"type":"fork",...}`` request, answering ``{"type":"forked","pid":P,"fds":{...}}`` or
   ``fork_failed``.

Each request arrives in one message with its fds (SCM_RIGHTS): the worker's channel end, then its
listeners, then the board. The kernel gives them the lowest numbers free in the zygote, which are by
definition not the app's, and the worker keeps them there: nothing is dup2()ed, so every descriptor
the app opened at import (a log file, a sqlite connection, prometheus_client's mmapped files) is
the same object in every worker, as after a plain fork. The numbers go to the worker in its
environment (ARBITER_LISTEN_FD_NUMBERS, ARBITER_CHANNEL_FD, ARBITER_BOARD_FD) and to the arbiter in
the ``forked`` answer, which checks them against what it sent.

The zygote double-forks: the intermediate child exits at once, so the worker is re-parented to the
arbiter (a subreaper) and supervised like any exec'd worker. The worker then becomes exactly what an
exec'd worker is: its own session, its ARBITER_* variables, a command line that says which worker it
is, PR_SET_PDEATHSIG armed once the arbiter is its parent, a reseeded ``random``, and the same
``worker.run`` (event loop, lifespan startup, ``ready``), without a second logging configuration.
"""

from __future__ import annotations

import array
import atexit
import dataclasses
import gc
import json
import logging.config
import os
import random
import socket
import sys
import time
import traceback
from collections.abc import Sequence

from arbiter_worker import exits, forksafety
from arbiter_worker.channel import Channel
from arbiter_worker.cli import Options
from arbiter_worker.environment import WorkerEnvironment, parse_environment
from arbiter_worker.handshake import send_hello
from arbiter_worker.logs import adopt_stdio, logging_config, set_source
from arbiter_worker.parent import arm_parent_death_signal, set_process_name
from arbiter_worker.proctitle import set_title, worker_title

MAX_REQUEST_BYTES = 4096
MAX_FDS = 1 + 64 + 1
REPARENT_WAIT_SECONDS = 5.0


def import_app(options: Options) -> None:
    """Import the app and everything a worker imports before serving, so the workers share it."""
    from uvicorn.importer import import_from_string

    import arbiter_worker.worker  # noqa: F401  (uvicorn, the protocols and the server subclass)

    import_from_string(options.app)


def send(sock: socket.socket, message: dict[str, object]) -> None:
    sock.sendall(json.dumps(message, separators=(",", ":")).encode() + b"\n")


def receive(sock: socket.socket) -> tuple[bytes, list[int]]:
    """One request line and the fds sent with it (the arbiter sends one request at a time)."""
    fds = array.array("i")
    data, ancillary, _flags, _address = sock.recvmsg(
        MAX_REQUEST_BYTES, socket.CMSG_SPACE(MAX_FDS * fds.itemsize), socket.MSG_CMSG_CLOEXEC
    )
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    return data, list(fds)


@dataclasses.dataclass(frozen=True)
class WorkerFds:
    """Where a forked worker finds what the arbiter sent: the numbers the zygote received them at."""

    channel: int
    listeners: tuple[int, ...]
    board: int | None

    def as_message(self) -> dict[str, object]:
        return {"channel": self.channel, "listen": list(self.listeners), "board": self.board}


def worker_fds(received: Sequence[int], listen_count: int, with_board: bool) -> WorkerFds:
    """The request's fds in the order the arbiter sends them: the channel, the listeners, the board."""
    wanted = 1 + listen_count + (1 if with_board else 0)
    if listen_count < 0 or len(received) != wanted:
        raise ValueError(f"the fork request carries {len(received)} fds, expected {wanted} (1 channel, "
                         f"{listen_count} listeners{', 1 board' if with_board else ''})")
    board = received[1 + listen_count] if with_board else None
    return WorkerFds(channel=received[0], listeners=tuple(received[1 : 1 + listen_count]), board=board)


def wait_for_arbiter_as_parent(arbiter_pid: int | None) -> bool:
    """The intermediate child exits at once; until then our parent is it, not the arbiter."""
    if arbiter_pid is None:
        return True
    deadline = time.monotonic() + REPARENT_WAIT_SECONDS
    while os.getppid() != arbiter_pid:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    # Armed only now: the signal fires when the parent dies, and the intermediate child just did.
    arm_parent_death_signal()
    return os.getppid() == arbiter_pid


def become_worker(
    zygote_sock: socket.socket, request: dict[str, object], fds: WorkerFds, options: Options, zygote_pid: int
) -> int:
    """In the grandchild: turn into an ordinary worker and serve. Returns the exit code."""
    from arbiter_worker.worker import run

    os.setsid()
    worker_id = str(request.get("worker_id", "?"))
    set_process_name("arbiter-worker")
    set_title(worker_title(worker_id, zygote_pid, options.app))
    set_source(worker_id)
    zygote_sock.close()
    # The arbiter computed this worker's ARBITER_* variables (launch.c) and sent them as "env"; only
    # the fd numbers are the zygote's to say: it is where the fds arrived, not 3 onwards.
    env = request.get("env")
    if isinstance(env, dict):
        os.environ.update({str(name): str(value) for name, value in env.items()})
    os.environ.update(
        {"ARBITER_LISTEN_FD_NUMBERS": ",".join(map(str, fds.listeners)), "ARBITER_CHANNEL_FD": str(fds.channel)}
    )
    if fds.board is not None:
        os.environ["ARBITER_BOARD_FD"] = str(fds.board)
    environment: WorkerEnvironment = parse_environment(os.environ)
    if not wait_for_arbiter_as_parent(environment.arbiter_pid):
        print("arbiter_worker: the arbiter is gone (not our parent after the fork); exiting", file=sys.stderr)
        return exits.PARENT_GONE
    random.seed()
    gc.enable()  # the zygote imported with the collector off; the frozen objects stay out of its reach
    channel = Channel.from_fd(fds.channel)
    send_hello(channel)  # the first line on this worker's own channel, as from an exec'd shim
    max_requests = int(str(request.get("max_requests", 0)))
    try:
        return run(dataclasses.replace(options, max_requests=max_requests), environment, channel, forked=True)
    finally:
        channel.close()


def fork_worker(
    zygote_sock: socket.socket, request: dict[str, object], received: list[int], options: Options
) -> tuple[int, WorkerFds]:
    """Double fork; returns the worker's pid (the intermediate child reports it through a pipe) and
    where the worker has its fds."""
    # "stdio": the last fd is the worker's own stdout and stderr, a pipe the arbiter reads; it goes on
    # fds 1 and 2 in the worker, so it is not one of the fds the worker finds where they were received.
    stdio = received[-1] if request.get("stdio") and received else None
    sent = received[:-1] if stdio is not None else received
    fds = worker_fds(sent, int(str(request.get("listen_fds", 0))), int(str(request.get("board_index", 0))) > 0)
    zygote_pid = os.getpid()
    read_end, write_end = os.pipe()
    intermediate = forksafety.fork()
    if intermediate == 0:
        code = exits.USAGE
        try:
            os.close(read_end)
            worker = forksafety.fork()
            if worker == 0:
                os.close(write_end)
                try:
                    if stdio is not None:
                        adopt_stdio(stdio)
                    code = become_worker(zygote_sock, request, fds, options, zygote_pid)
                except SystemExit as stop:
                    code = stop.code if isinstance(stop.code, int) else exits.STOPPED
                except BaseException:
                    traceback.print_exc()
                    code = exits.BOOT_FAILED
                finally:
                    # The exit an exec'd worker's interpreter makes: the app's atexit handlers run
                    # (OpenTelemetry flushes its spans there), then stdio is flushed. os._exit, not
                    # sys.exit: the zygote's frames below this one must not run in the worker.
                    atexit._run_exitfuncs()
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            os.write(write_end, str(worker).encode())
            code = exits.STOPPED
        finally:
            os._exit(code)
    os.close(write_end)
    for fd in received:
        os.close(fd)
    answer = forksafety.read_to_end(read_end)
    os.waitpid(intermediate, 0)
    text = answer.decode() or "0"
    return int(text), fds


def reopen_log_file(received: list[int]) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(received[0], 1)
    os.dup2(received[0], 2)
    for fd in received:
        os.close(fd)


def serve_forks(zygote_sock: socket.socket, options: Options) -> int:
    while True:
        data, received = receive(zygote_sock)
        if not data:
            for fd in received:
                os.close(fd)
            return exits.PARENT_GONE  # the arbiter closed the channel
        try:
            request = json.loads(data)
            if isinstance(request, dict) and request.get("type") == "log_file" and received:
                reopen_log_file(received)  # after a rotation; the workers forked from now on inherit it
                continue
            if not isinstance(request, dict) or request.get("type") != "fork" or not received:
                raise ValueError(f"not a fork request with fds: {data[:80]!r}")
            pid, fds = fork_worker(zygote_sock, request, received, options)
        except (OSError, ValueError) as exc:
            for fd in received:
                try:
                    os.close(fd)
                except OSError:
                    pass
            send(zygote_sock, {"type": "fork_failed", "error": str(exc)[:200]})
            continue
        if pid > 0:
            send(zygote_sock, {"type": "forked", "pid": pid, "fds": fds.as_message()})
        else:
            send(zygote_sock, {"type": "fork_failed", "error": "the intermediate child reported no pid"})


def import_and_judge(options: Options, zygote_sock: socket.socket) -> int | None:
    """Import the app and decide whether it can be forked; None to go on, else the exit code."""
    try:
        import_app(options)
    except BaseException:
        print(f"arbiter_worker: the app {options.app!r} failed to import in the zygote (--preload):", file=sys.stderr)
        traceback.print_exc()
        return exits.BOOT_FAILED
    verdict = forksafety.judge()
    if verdict.refusal is not None:
        print(f"arbiter_worker: {verdict.refusal}", file=sys.stderr)
        send(zygote_sock, {"type": "zygote_refused", "summary": verdict.summary or verdict.refusal})
        return exits.BOOT_FAILED
    if verdict.warning is not None:
        print(verdict.warning, file=sys.stderr)
    return None


def run_zygote(options: Options, environment: WorkerEnvironment, channel: Channel) -> int:
    zygote_sock = channel.release()  # the hello went out on it; from here requests are read blocking
    if zygote_sock is None:
        print("arbiter_worker: --zygote needs ARBITER_CHANNEL_FD (it is started by the arbiter)", file=sys.stderr)
        return exits.USAGE
    zygote_sock.set_inheritable(False)
    try:
        return zygote_main(options, environment, zygote_sock)
    finally:
        zygote_sock.close()


def zygote_main(options: Options, environment: WorkerEnvironment, zygote_sock: socket.socket) -> int:
    set_process_name("arbiter-zygote")
    # As an exec'd worker's uvicorn.Config does, but once, before the app: its handlers come after ours.
    logging.config.dictConfig(logging_config(environment.log_format, environment.worker_id, label="zygote"))
    started = time.monotonic()
    # No collections while the app builds its objects: a big import otherwise pays for many full
    # collections of a growing heap. One collection after the import, then freeze.
    gc.disable()
    code = import_and_judge(options, zygote_sock)
    if code is not None:
        return code
    imported = time.monotonic() - started
    gc.collect()
    gc.freeze()
    send(zygote_sock, {"type": "zygote_ready", "pid": os.getpid(), "import_seconds": round(imported, 4)})
    try:
        return serve_forks(zygote_sock, options)
    except (BrokenPipeError, ConnectionResetError):
        return exits.PARENT_GONE
