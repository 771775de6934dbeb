"""Baseline for drain_load.py and the overhead figure: stock uvicorn on the same inherited socket.

Not the shim: uvicorn's own Server and protocols, with only a `ready` line added so the harness
knows when it listens. Run as `python stock_uvicorn.py APP --http NAME`.
"""

import os
import socket
import sys

import uvicorn


class Server(uvicorn.Server):
    async def startup(self, sockets=None):  # type: ignore[no-untyped-def]
        await super().startup(sockets=sockets)
        channel = socket.socket(fileno=int(os.environ["ARBITER_CHANNEL_FD"]))
        channel.sendall(b'{"type":"ready","pid":%d}\n' % os.getpid())
        channel.detach()


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    app, http = sys.argv[-1], sys.argv[sys.argv.index("--http") + 1] if "--http" in sys.argv else "auto"
    config = uvicorn.Config(app, http=http, access_log=False, timeout_graceful_shutdown=10, workers=1)
    Server(config).run(sockets=[socket.socket(fileno=3)])
