"""Opens descriptors at import, as real apps do: an audit file with open(), a logging.FileHandler
(mode "w": a closed one never reopens), and a data file that is closed and reopened after a fork the
way prometheus_client's multiprocess mode treats its mmapped files. Under --preload these fds exist in
the zygote, so a forked worker must find them untouched: nothing of the arbiter's may land on them.

FDS_AT_IMPORT_DIR names the directory the files go to."""

import atexit
import logging
import os

from fastapi import FastAPI

DIRECTORY = os.environ["FDS_AT_IMPORT_DIR"]
IMPORTED_BY = os.getpid()

# The data file first: it takes the lowest free fd, the one an arbiter fd would most likely be put on.
data_fd = os.open(os.path.join(DIRECTORY, "data.bin"), os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
data_owner = IMPORTED_BY
audit = open(os.path.join(DIRECTORY, "audit.log"), "a", buffering=1)
handler = logging.FileHandler(os.path.join(DIRECTORY, "handler.log"), mode="w")
handler.setFormatter(logging.Formatter("%(process)d %(message)s"))
events = logging.getLogger("app.events")
events.addHandler(handler)
events.setLevel(logging.INFO)
events.propagate = False
# At exit, as OpenTelemetry flushes its spans: runs in every worker that exits, forked or exec'd.
atexit.register(lambda: audit.write(f"{os.getpid()} atexit\n"))
IMPORT_FDS = {"audit": audit.fileno(), "handler": handler.stream.fileno(), "data": data_fd}

app = FastAPI()


def target(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


@app.get("/")
async def who_answered() -> dict:
    return {"pid": os.getpid(), "worker_id": os.environ.get("ARBITER_WORKER_ID")}


@app.get("/write")
async def write(line: str) -> dict:
    """Writes one line through each descriptor opened at import."""
    global data_fd, data_owner
    if data_owner != os.getpid():
        # prometheus_client does this on the first write in a new pid: close the inherited file, open its own.
        os.close(data_fd)
        data_fd = os.open(os.path.join(DIRECTORY, "data.bin"), os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        data_owner = os.getpid()
    audit.write(f"{os.getpid()} {line}\n")
    events.info(line)
    os.write(data_fd, f"{os.getpid()} {line}\n".encode())
    return {"pid": os.getpid(), "import_fds": IMPORT_FDS, "targets": {name: target(fd) for name, fd in IMPORT_FDS.items()},
            "arbiter_fds": {name: os.environ.get(name) for name in
                            ("ARBITER_LISTEN_FD_NUMBERS", "ARBITER_CHANNEL_FD", "ARBITER_BOARD_FD")}}
