"""Zygote mode (``python -m arbiter_worker --zygote``): import the app once, fork workers on request.

The arbiter starts one zygote per app generation when it runs with ``--preload``. The zygote:

1. imports the app module (no event loop, no lifespan) and the uvicorn modules the workers use, with
   the garbage collector off (a big import otherwise pays for many full collections);
2. refuses to go on if the import started threads (a fork copies only the calling thread, so a
   thread started at import would silently not exist in the workers), naming them and the fix;
3. runs ``gc.collect()`` then ``gc.freeze()``: the surviving objects move to a generation the
   collector never walks, so a collection in a worker never writes to (and so never un-shares) the
   pages the workers share with the zygote;
4. sends ``{"type":"zygote_ready","import_seconds":S}`` and then forks one worker per
   ``{"type":"fork",...}`` request, answering ``{"type":"forked","pid":P}`` or ``fork_failed``.

Each request arrives in one message with its fds (SCM_RIGHTS): the worker's channel end, then its
listeners. The zygote double-forks: the intermediate child exits at once, so the worker is
re-parented to the arbiter (a subreaper) and supervised like any exec'd worker. The worker then
becomes exactly what an exec'd worker is: its own session, the listeners at fds 3.., the channel after
them, its ARBITER_* variables, PR_SET_PDEATHSIG armed once the arbiter is its parent, a reseeded
``random``, and the same ``worker.run`` (event loop, lifespan startup, ``ready``).
"""

from __future__ import annotations

import array
import dataclasses
import fcntl
import gc
import json
import os
import random
import socket
import sys
import threading
import time
import traceback
from collections.abc import Sequence

from arbiter_worker import exits
from arbiter_worker.channel import Channel
from arbiter_worker.cli import Options
from arbiter_worker.environment import WorkerEnvironment, parse_environment
from arbiter_worker.handshake import send_hello
from arbiter_worker.logs import adopt_stdio
from arbiter_worker.parent import arm_parent_death_signal, set_process_name

MAX_REQUEST_BYTES = 4096
MAX_FDS = 1 + 64
REPARENT_WAIT_SECONDS = 5.0
FIRST_LISTEN_FD = 3


class ZygoteRefused(Exception):
    """The app cannot be forked safely; the message says why and what to do."""


def import_app(options: Options) -> None:
    """Import the app and everything a worker imports before serving, so the workers share it."""
    from uvicorn.importer import import_from_string

    import arbiter_worker.worker  # noqa: F401  (uvicorn, the protocols and the server subclass)

    import_from_string(options.app)


def check_single_threaded() -> None:
    threads = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    try:
        tasks = len(os.listdir("/proc/self/task"))
    except OSError:
        tasks = 1 + len(threads)
    if threads or tasks > 1:
        named = ", ".join(repr(name) for name in threads) or f"{tasks - 1} native thread(s)"
        raise ZygoteRefused(
            f"--preload: importing the app started threads ({named}); a fork copies only the calling thread, so "
            "the workers would run without them. Start them in the app's lifespan startup instead (each worker "
            "then gets its own), or run without --preload"
        )


def send(sock: socket.socket, message: dict[str, object]) -> None:
    sock.sendall(json.dumps(message, separators=(",", ":")).encode() + b"\n")


def receive(sock: socket.socket) -> tuple[bytes, list[int]]:
    """One request line and the fds sent with it (the arbiter sends one request at a time)."""
    fds = array.array("i")
    data, ancillary, _flags, _address = sock.recvmsg(MAX_REQUEST_BYTES, socket.CMSG_SPACE(MAX_FDS * fds.itemsize))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    return data, list(fds)


def place_fds(received: Sequence[int], listen_count: int, with_board: bool = False) -> int:
    """Put the listeners at 3..3+L-1, the channel at 3+L and the board (sent last) at 3+L+1, as for an
    exec'd worker; returns the channel fd."""
    channel_target = FIRST_LISTEN_FD + listen_count
    order = [*received[1 : 1 + listen_count], received[0]]
    if with_board and len(received) > 1 + listen_count:
        order.append(received[1 + listen_count])
    # Move everything above the target range first, so no dup2 overwrites an fd still to be moved.
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, channel_target + 2) for fd in order]
    for fd in received:
        os.close(fd)
    for target, fd in enumerate(high, start=FIRST_LISTEN_FD):
        os.dup2(fd, target, inheritable=False)
        os.close(fd)
    return channel_target


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


def become_worker(zygote_sock: socket.socket, request: dict[str, object], received: list[int], options: Options) -> int:
    """In the grandchild: turn into an ordinary worker and serve. Returns the exit code."""
    from arbiter_worker.worker import run

    os.setsid()
    set_process_name("arbiter-worker")
    zygote_sock.close()
    if request.get("stdio"):  # the last fd: this worker's own stdout and stderr pipe to the arbiter
        adopt_stdio(received.pop())
    listen_count = int(str(request.get("listen_fds", 0)))
    board_index = int(str(request.get("board_index", 0)))
    channel_fd = place_fds(received, listen_count, with_board=board_index > 0)
    os.environ.update(
        {
            "ARBITER_WORKER_ID": str(request.get("worker_id", "?")),
            "ARBITER_GENERATION": str(request.get("generation", "0")),
            "ARBITER_LISTEN_FDS": str(listen_count),
            "ARBITER_CHANNEL_FD": str(channel_fd),
        }
    )
    if board_index > 0:
        os.environ.update({"ARBITER_BOARD_FD": str(channel_fd + 1), "ARBITER_BOARD_INDEX": str(board_index)})
    environment: WorkerEnvironment = parse_environment(os.environ)
    if not wait_for_arbiter_as_parent(environment.arbiter_pid):
        print("arbiter_worker: the arbiter is gone (not our parent after the fork); exiting", file=sys.stderr)
        return exits.PARENT_GONE
    random.seed()
    gc.enable()  # the zygote imported with the collector off; the frozen objects stay out of its reach
    channel = Channel.from_fd(channel_fd)
    send_hello(channel)  # the first line on this worker's own channel, as from an exec'd shim
    max_requests = int(str(request.get("max_requests", 0)))
    return run(dataclasses.replace(options, max_requests=max_requests), environment, channel)


def fork_worker(zygote_sock: socket.socket, request: dict[str, object], received: list[int], options: Options) -> int:
    """Double fork; returns the worker's pid (the intermediate child reports it through a pipe)."""
    read_end, write_end = os.pipe()
    intermediate = os.fork()
    if intermediate == 0:
        code = exits.USAGE
        try:
            os.close(read_end)
            worker = os.fork()
            if worker == 0:
                os.close(write_end)
                try:
                    code = become_worker(zygote_sock, request, received, options)
                except BaseException:
                    traceback.print_exc()
                    code = exits.BOOT_FAILED
                finally:
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
    chunks = []
    while chunk := os.read(read_end, 32):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(intermediate, 0)
    text = b"".join(chunks).decode() or "0"
    return int(text)


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
            pid = fork_worker(zygote_sock, request, received, options)
        except (OSError, ValueError) as exc:
            for fd in received:
                try:
                    os.close(fd)
                except OSError:
                    pass
            send(zygote_sock, {"type": "fork_failed", "error": str(exc)[:200]})
            continue
        if pid > 0:
            send(zygote_sock, {"type": "forked", "pid": pid})
        else:
            send(zygote_sock, {"type": "fork_failed", "error": "the intermediate child reported no pid"})


def run_zygote(options: Options, environment: WorkerEnvironment, channel: Channel) -> int:
    zygote_sock = channel.release()  # the hello went out on it; from here requests are read blocking
    if zygote_sock is None:
        print("arbiter_worker: --zygote needs ARBITER_CHANNEL_FD (it is started by the arbiter)", file=sys.stderr)
        return exits.USAGE
    zygote_sock.set_inheritable(False)
    set_process_name("arbiter-zygote")
    started = time.monotonic()
    # No collections while the app builds its objects: a big import otherwise pays for many full
    # collections of a growing heap. One collection after the import, then freeze.
    gc.disable()
    try:
        import_app(options)
        check_single_threaded()
    except ZygoteRefused as exc:
        print(f"arbiter_worker: {exc}", file=sys.stderr)
        return exits.BOOT_FAILED
    except BaseException:
        print(f"arbiter_worker: the app {options.app!r} failed to import in the zygote (--preload):", file=sys.stderr)
        traceback.print_exc()
        return exits.BOOT_FAILED
    imported = time.monotonic() - started
    gc.collect()
    gc.freeze()
    send(zygote_sock, {"type": "zygote_ready", "pid": os.getpid(), "import_seconds": round(imported, 4)})
    try:
        return serve_forks(zygote_sock, options)
    except (BrokenPipeError, ConnectionResetError):
        return exits.PARENT_GONE
