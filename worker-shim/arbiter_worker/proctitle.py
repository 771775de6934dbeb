"""A forked worker's command line says it is a worker (ps, top, htop), not ``--zygote``.

A worker forked by the zygote inherits the zygote's argv memory, so ``ps`` would show every worker as
``python -m arbiter_worker --zygote ... APP``. The kernel shows /proc/PID/cmdline straight from that
memory (between ``arg_start`` and ``arg_end``, fields 48 and 49 of /proc/PID/stat), so we overwrite it
in place, as the setproctitle package does, within its original length. Python keeps its own copy
of the arguments (sys.argv, sys.orig_argv), which this does not touch. PR_SET_NAME (parent.py) sets
the 15-byte ``comm`` separately. No dependency: ~20 lines do what setproctitle does on Linux, which is
the only platform the arbiter runs on; anywhere this cannot work it does nothing.
"""

from __future__ import annotations

import ctypes
import sys

ARG_START_FIELD = 48  # /proc/PID/stat, 1-based, per proc(5)


def argv_area() -> tuple[int, int] | None:
    """(address, length) of this process's argv strings, or None if the kernel does not say."""
    try:
        with open("/proc/self/stat", encoding="ascii", errors="replace") as stat:
            raw = stat.read()
        fields = raw[raw.rindex(")") + 2 :].split()
        start, end = int(fields[ARG_START_FIELD - 3]), int(fields[ARG_START_FIELD - 2])
    except (OSError, ValueError, IndexError):
        return None
    return (start, end - start) if start > 0 and end > start else None


def set_title(title: str) -> bool:
    """Make /proc/self/cmdline read ``title`` (cut to the original length). False if it could not."""
    if not sys.platform.startswith("linux"):
        return False
    area = argv_area()
    if area is None:
        return False
    address, length = area
    data = title.encode(errors="replace")[: length - 1]
    ctypes.memmove(address, data + b"\0" * (length - len(data)), length)
    return True


def worker_title(worker_id: str, zygote_pid: int, app: str) -> str:
    return f"arbiter_worker: worker {worker_id} (forked from zygote {zygote_pid}) {app}"
