"""An app that writes a lot to its output: prints and log lines on demand, and which process answered."""

import logging
import os
import sys

from fastapi import FastAPI

app = FastAPI()
log = logging.getLogger("chatty")


@app.get("/")
async def who_answered() -> dict:
    return {"pid": os.getpid(), "worker_id": os.environ.get("ARBITER_WORKER_ID")}


@app.get("/noise")
async def noise(lines: int = 100) -> dict:
    """`lines` raw prints of ~100 bytes each: fills a log output that nobody reads."""
    for i in range(min(lines, 10000)):
        print(f"chatty line {i:05d} " + "x" * 80)
    sys.stdout.flush()
    return {"pid": os.getpid(), "printed": lines}


@app.get("/print")
async def print_marker(text: str = "marker") -> dict:
    print(text)
    return {"pid": os.getpid()}
