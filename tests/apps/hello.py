"""The baseline app: which process answered, a slow endpoint, and the worker's environment."""

import asyncio
import os

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def who_answered() -> dict:
    return {"pid": os.getpid(), "worker_id": os.environ.get("ARBITER_WORKER_ID")}


@app.get("/slow")
async def slow(s: float = 1.0, started: str = "") -> dict:
    if started:
        # Tells a test the request is inside the handler (accepted, in flight) before it signals.
        with open(started, "w") as marker:
            marker.write(str(os.getpid()))
    await asyncio.sleep(s)
    return {"pid": os.getpid(), "slept": s}


@app.get("/env")
async def environment() -> dict:
    return dict(os.environ)
