"""The first line on the channel: the shim's ``hello`` and the protocol version (docs/worker-channel.md,
"The handshake").

An upgrade replaces the arbiter binary and this package on disk while the old arbiter keeps running,
so a reload can start a new shim under an old arbiter. Both sides say which version of the channel
protocol they speak: the arbiter in ``ARBITER_PROTOCOL``, the shim in ``hello``. A difference is an
error message on each side, not a drain that fails in some new way.

Nothing here imports uvicorn: the hello goes out before the shim (or a worker forked from a fork
server, which calls ``send_hello`` itself) imports uvicorn-based modules or the app.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
from collections.abc import Mapping

from arbiter_worker import __version__
from arbiter_worker.channel import Channel

PROTOCOL = 1
"""The version of the worker channel protocol this shim speaks; ARBITER_CHANNEL_PROTOCOL in C."""

DIST_INFO = re.compile(r"uvicorn-([^-]+)\.dist-info", re.IGNORECASE)


class ProtocolMismatch(Exception):
    """ARBITER_PROTOCOL names another version than ours: the arbiter and the shim are different installs."""


def check_arbiter_protocol(environ: Mapping[str, str]) -> None:
    """Raise ProtocolMismatch, with both versions and the fix, unless the arbiter speaks PROTOCOL.

    An unset ARBITER_PROTOCOL (the shim started by hand, or by an arbiter older than the handshake)
    is accepted: the arbiter side of the handshake decides then.
    """
    text = environ.get("ARBITER_PROTOCOL")
    if text is None or text == "" or text == str(PROTOCOL):
        return
    raise ProtocolMismatch(
        f"arbiter_worker: the arbiter speaks worker-channel protocol {text!r}, this shim "
        f"(arbiter_worker {__version__} at {os.path.dirname(os.path.abspath(__file__))}) speaks {PROTOCOL}.\n"
        "The arbiter and its worker shim come from different installs (an upgrade while the arbiter "
        "was running?). fix: restart the arbiter (systemctl restart, not reload), or reinstall arbiter "
        "so the binary and arbiter_worker come from the same version."
    )


@functools.lru_cache(maxsize=1)
def uvicorn_version() -> str | None:
    """The installed uvicorn's version, without importing it; None when there is none.

    Read from the name of the ``uvicorn-X.Y.Z.dist-info`` directory beside the package (one listdir);
    importlib.metadata says the same for any layout but is slow to import (docs/benchmarks/), paid only when the
    directory is not there. Cached: a fork server looks it up once for every worker it forks.
    """
    spec = importlib.util.find_spec("uvicorn")
    if spec is None or not spec.submodule_search_locations:
        return None
    site = os.path.dirname(next(iter(spec.submodule_search_locations)))
    try:
        entries = os.listdir(site)
    except OSError:
        entries = []
    for entry in entries:
        match = DIST_INFO.fullmatch(entry)
        if match is not None:
            return match.group(1)
    from importlib import metadata

    try:
        return metadata.version("uvicorn")
    except metadata.PackageNotFoundError:
        return None

def hello_message(pid: int | None = None) -> dict[str, object]:
    return {
        "type": "hello",
        "protocol": PROTOCOL,
        "pid": os.getpid() if pid is None else pid,
        "shim": __version__,
        "uvicorn": uvicorn_version(),
    }


def send_hello(channel: Channel) -> None:
    """Send ``hello`` for this process. Must be the first message on the channel."""
    channel.send(hello_message())

