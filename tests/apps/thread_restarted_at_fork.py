"""Starts a background thread at import and starts it again in every forked child with
os.register_at_fork, as OpenTelemetry's BatchSpanProcessor does with its export thread: under
--preload each worker has the thread, so the zygote must fork this app."""

import os
import threading
import time

from fastapi import FastAPI

stop = threading.Event()


def flush_forever() -> None:
    while not stop.wait(60):
        pass


def start_flusher() -> None:
    threading.Thread(target=flush_forever, name="span-flusher", daemon=True).start()


start_flusher()
os.register_at_fork(after_in_child=start_flusher)

app = FastAPI()


@app.get("/")
async def threads() -> dict:
    return {"pid": os.getpid(), "threads": sorted(t.name for t in threading.enumerate())}
