"""An `async def` handler that calls a blocking driver: each request holds the worker's event loop
for BLOCK_MS (20 ms), as a sync database client inside async code does. One worker then answers at
most ~50 requests/s whatever the CPU count (a sleeping loop uses no CPU), so more workers really
help, even on 2 CPUs: the app the autoscaling tests and benchmark load.

GET /        blocks the loop for BLOCK_MS, then answers {"pid": ...}
GET /fast    answers at once (light load that keeps connections busy without holding a worker)
"""

import os
import time

from fastapi import FastAPI

BLOCK_SECONDS = float(os.environ.get("BLOCK_MS", "20")) / 1000

app = FastAPI()


def query_with_a_sync_driver() -> None:
    time.sleep(BLOCK_SECONDS)


@app.get("/")
async def blocking() -> dict:
    query_with_a_sync_driver()
    return {"pid": os.getpid()}


@app.get("/fast")
async def fast() -> dict:
    return {"pid": os.getpid()}
