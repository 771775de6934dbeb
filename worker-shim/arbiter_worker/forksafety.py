"""Can the zygote fork the app it imported? The thread rule of ``--preload``, judged by one real fork.

A fork copies only the calling thread. What happens to the others depends on who started them:

- a library that restarts its thread in the child is fine: OpenTelemetry's BatchSpanProcessor
  registers ``os.register_at_fork(after_in_child=...)`` and starts its export thread again, under
  the same name;
- a native pool whose ``pthread_atfork`` prepare handler stops it is fine: OpenBLAS registers
  ``blas_thread_shutdown_`` (prepare only), which joins its idle pool before every fork; the pool
  starts again at the next BLAS call, in the parent and in each child;
- a Python thread the app started with nothing to restart it does not exist in the child: refused,
  naming it (the app would run without its cache refresher, its flusher...);
- OpenMP (libgomp) keeps its pool across a fork and has no fork handler: the first parallel region
  in a child waits forever for threads that are not there. Refused, naming OpenMP and the fixes;
- any other native thread: nobody can say. A warning with the count, and the workers are forked.

So the rule follows what a fork does instead of guessing from names: ``judge()`` forks once, the
child takes its census after every at-fork hook ran, writes it to a pipe and leaves with
``os._exit`` (nothing of the app runs in it but its own fork hooks); the parent compares that with
its census before the fork and after it. With no thread besides the main one, there is no probe.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import threading
import warnings

OPENMP_FIX = (
    "Fix: set OMP_NUM_THREADS=1 for the import (in the arbiter's environment: libgomp then starts no "
    "pool), or move the work that runs OpenMP at import (model training, a fit) into the app's lifespan "
    "startup, which runs in each worker; or run without --preload"
)


@dataclasses.dataclass(frozen=True)
class Census:
    """The threads of this process besides the calling (main) one."""

    python: tuple[str, ...]  # names of live Python threads
    native: frozenset[int]  # tids of threads Python does not know (pools of C libraries)


@dataclasses.dataclass(frozen=True)
class Verdict:
    refusal: str | None = None  # the whole message: what, why, what to do
    summary: str | None = None  # the refusal in one clause, for the arbiter's log line
    warning: str | None = None


def census() -> Census:
    current = threading.current_thread()
    python = [t for t in threading.enumerate() if t is not current and t.is_alive()]
    try:
        tasks = {int(entry) for entry in os.listdir("/proc/self/task")}
    except OSError:
        tasks = set()
    known = {t.native_id for t in python} | {threading.get_native_id()}
    return Census(python=tuple(sorted(t.name for t in python)), native=frozenset(tasks - known))


def openmp_loaded() -> bool:
    """libgomp is mapped in this process (scikit-learn, LightGBM, XGBoost and torch wheels vendor it)."""
    try:
        with open("/proc/self/maps", encoding="ascii", errors="replace") as maps:
            return any("libgomp" in line for line in maps)
    except OSError:
        return False


def fork() -> int:
    """os.fork() without Python 3.12's warning that forking a multi-threaded process may deadlock:
    judge() decided that for the threads this process has."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()


def read_to_end(fd: int) -> bytes:
    """Everything a forked child writes into the pipe ``fd`` until it exits; closes ``fd``."""
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def probe_child() -> Census:
    """Fork once and return the child's census, taken after the at-fork hooks ran in it."""
    read_end, write_end = os.pipe()
    pid = fork()
    if pid == 0:
        try:
            os.close(read_end)
            child = census()
            os.write(write_end, json.dumps({"python": child.python, "native": len(child.native)}).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    text = read_to_end(read_end)
    os.waitpid(pid, 0)
    report = json.loads(text or b"{}")
    return Census(python=tuple(report.get("python", ())), native=frozenset(range(int(report.get("native", 0)))))


def judge() -> Verdict:
    before = census()
    if not before.python and not before.native:
        return Verdict()
    child = probe_child()
    after = census()
    lost = collections.Counter(before.python) - collections.Counter(child.python)
    if lost:
        named = ", ".join(repr(name) for name in sorted(lost.elements()))
        return Verdict(
            refusal=f"--preload: importing the app started threads ({named}) that nothing restarts after a fork; "
            "a fork copies only the calling thread, so the workers would run without them. Start them in the "
            "app's lifespan startup instead (each worker then gets its own), restart them with "
            "os.register_at_fork(after_in_child=...), or run without --preload",
            summary=f"importing it started threads that a fork would lose ({named})",
        )
    # Native threads that survived the fork in the zygote: a pool with a prepare handler (OpenBLAS)
    # is gone by now; those a child handler started again in the child are accounted for.
    kept = len(before.native & after.native)
    unaccounted = max(0, kept - len(child.native))
    if unaccounted and openmp_loaded():
        return Verdict(
            refusal=f"--preload: the app ran OpenMP (libgomp) while importing: its pool of {unaccounted} native "
            "thread(s) exists only in the zygote, and libgomp has no fork handler, so the first OpenMP parallel "
            f"region in a worker would hang. {OPENMP_FIX}",
            summary="it ran OpenMP (libgomp) at import, which hangs after a fork",
        )
    if unaccounted:
        return Verdict(
            warning=f"arbiter_worker: warning: --preload: importing the app left {unaccounted} native thread(s) that "
            "no fork handler stops or restarts (not Python threads, not a BLAS pool, not OpenMP); the workers are "
            "forked without them. If a worker hangs inside a native library, start that library in the app's "
            "lifespan startup or run without --preload"
        )
    return Verdict()
