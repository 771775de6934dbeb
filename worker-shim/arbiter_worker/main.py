"""main(): the order in which a worker comes to life, each step able to stop it with its exit code.

1. tie our life to the arbiter's (PR_SET_PDEATHSIG, then check it is still our parent), and make a
   stop signal that arrives before the server handles signals a clean exit 0;
2. parse the ARBITER_* environment and open the channel (exit 2 when wrong: the arbiter has a bug, or
   we are not the --user that ARBITER_UID names);
3. the handshake: exit 4 if the arbiter speaks another channel protocol, else send ``hello``, the
   first line on the channel (handshake.py);
4. parse options (exit 2), and arm faulthandler: SIGUSR1 dumps every thread's stack, even while the
   event loop is blocked;
5. check this interpreter has a usable uvicorn: new enough, the libraries --loop/--http/--ws need,
   and every uvicorn internal the shim relies on (exit 4 with the fix otherwise; a uvicorn newer
   than the tested range only warns);
6. only then import the uvicorn-based modules and serve (exit 0, or 3 if the app failed to boot).
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
from collections.abc import Sequence

from arbiter_worker import exits
from arbiter_worker.channel import Channel
from arbiter_worker.cli import Options, parse_args
from arbiter_worker.environment import EnvironmentInvalid, parse_environment
from arbiter_worker.handshake import ProtocolMismatch, check_arbiter_protocol, send_hello
from arbiter_worker.logs import quiet_std_streams
from arbiter_worker.parent import arm_parent_death_signal, parent_is_alive
from arbiter_worker.requirements import missing_library, uvicorn_problem, uvicorn_warning


def stop_before_serving(signum: int, frame: object) -> None:
    """Until the server installs its own handlers, a stop signal simply ends the worker cleanly."""
    raise SystemExit(exits.STOPPED)


def configure_early_signals() -> None:
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(signum, stop_before_serving)


def configure_stack_dumps() -> None:
    faulthandler.enable(file=sys.stderr, all_threads=True)
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True, chain=False)


def interpreter_problem(options: Options) -> str | None:
    """Why this interpreter cannot serve with these options (exit 4), or None; warns on a newer uvicorn."""
    problem = uvicorn_problem() or missing_library(options)
    if problem is not None:
        return problem
    from arbiter_worker.uvicorn_contract import contract_problem

    problem = contract_problem(options.http, options.ws)
    if problem is not None:
        return problem
    warning = uvicorn_warning()
    if warning is not None:
        print(warning, file=sys.stderr)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    quiet_std_streams()  # first: no print below, nor any of the app's, may raise on a failed write
    arm_parent_death_signal()
    configure_early_signals()
    try:
        environment = parse_environment(os.environ)
    except EnvironmentInvalid as exc:
        print(f"arbiter_worker: {exc}", file=sys.stderr)
        return exits.USAGE
    if environment.uid is not None and (os.getuid(), os.geteuid()) != (environment.uid, environment.uid):
        # --user: `arbiter exec-worker` drops privileges before this interpreter starts; a spawner
        # that skipped it must not run the app as root.
        print(f"arbiter_worker: expected to run as uid {environment.uid} (--user), not {os.geteuid()}", file=sys.stderr)
        return exits.USAGE
    if not parent_is_alive(environment.arbiter_pid):
        print(f"arbiter_worker: the arbiter (pid {environment.arbiter_pid}) is gone; exiting", file=sys.stderr)
        return exits.PARENT_GONE
    try:
        channel = Channel.from_fd(environment.channel_fd)
    except OSError as exc:
        print(f"arbiter_worker: {exc}; the arbiter must pass the channel after the listening sockets", file=sys.stderr)
        return exits.USAGE
    try:
        check_arbiter_protocol(os.environ)
    except ProtocolMismatch as exc:
        print(exc, file=sys.stderr)
        return exits.UNUSABLE_INTERPRETER
    send_hello(channel)

    options = parse_args(argv)
    configure_stack_dumps()
    problem = interpreter_problem(options)
    if problem is not None:
        print(problem, file=sys.stderr)
        return exits.UNUSABLE_INTERPRETER

    try:
        if options.zygote:
            from arbiter_worker.zygote import run_zygote

            return run_zygote(options, environment, channel)

        from arbiter_worker.worker import run

        return run(options, environment, channel)
    finally:
        channel.close()
