"""An `async def` endpoint that calls blocking code, freezing the worker's event loop.

The arbiter's heartbeats come from the loop, so a blocked loop stops them: the arbiter should dump
the worker's Python stack (which names block_the_event_loop) and then replace it.
"""

import os
import time

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def who_answered() -> dict:
    return {"pid": os.getpid()}


def block_the_event_loop(seconds: float) -> None:
    time.sleep(seconds)  # the bug this app exists to show: sync sleep inside async code


@app.get("/block")
async def block(s: float = 30.0, started: str = "") -> dict:
    if started:
        # Tells a test the request is inside the handler before the loop blocks.
        with open(started, "w") as marker:
            marker.write(str(os.getpid()))
    block_the_event_loop(s)
    return {"pid": os.getpid(), "blocked": s}
