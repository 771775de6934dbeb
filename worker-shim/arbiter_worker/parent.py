"""Never outlive the arbiter.

PR_SET_PDEATHSIG makes the kernel SIGKILL us when the arbiter dies. It only covers a parent that
dies after the prctl() call, so right after arming it we compare getppid() with ARBITER_PID: if
they differ the arbiter died in between (we were re-parented) and we must go at once.
The channel EOF check (channel.py) is the second line of defence.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15


def arm_parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies. False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        sys.stderr.write(f"arbiter_worker: prctl(PR_SET_PDEATHSIG) failed: {os.strerror(errno)}\n")
        return False
    return True


def parent_is_alive(arbiter_pid: int | None) -> bool:
    """True unless we know the arbiter's pid and our parent is no longer that process."""
    return arbiter_pid is None or os.getppid() == arbiter_pid


def set_process_name(name: str) -> None:
    """What ps and /proc/PID/comm show (15 bytes at most): tells the zygote from its workers."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)
