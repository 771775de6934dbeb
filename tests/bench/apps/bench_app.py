"""The app every server in the benchmark serves (FastAPI, as users would run it).

GET /       a small JSON body naming the process that answered
GET /sleep  awaits 10 ms (an I/O-bound handler), then answers like /
GET /slow   awaits 200 ms (the slow tenth of the mixed load in balance.py), then answers like /

Instrumentation, identical for every server and off the request path:
- BENCH_READY_DIR: at the end of lifespan startup each worker writes DIR/<pid> containing
  time.time(); the harness reads "this worker is ready to serve" from it, whatever the server.
- BENCH_COUNT_DIR: every 0.5 s each worker writes DIR/<pid> with the number of requests it answered
  (the fairness figures for servers that do not report per-worker counts themselves).
"""

import asyncio
import os
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI

_served = 0


async def _write_counts(directory: str) -> None:
    path = os.path.join(directory, str(os.getpid()))
    while True:
        await asyncio.sleep(0.5)
        with open(path + ".tmp", "w") as f:
            f.write(str(_served))
        os.replace(path + ".tmp", path)


@asynccontextmanager
async def lifespan(app: FastAPI):
    task = None
    count_dir = os.environ.get("BENCH_COUNT_DIR")
    if count_dir:
        task = asyncio.get_running_loop().create_task(_write_counts(count_dir))
    ready_dir = os.environ.get("BENCH_READY_DIR")
    if ready_dir:
        path = os.path.join(ready_dir, str(os.getpid()))
        with open(path + ".tmp", "w") as f:
            f.write(repr(time.time()))
        os.replace(path + ".tmp", path)
    yield
    if task is not None:
        task.cancel()


app = FastAPI(lifespan=lifespan)


@app.get("/")
async def hello() -> dict:
    global _served
    _served += 1
    return {"message": "hello", "pid": os.getpid()}


@app.get("/sleep")
async def sleep() -> dict:
    global _served
    _served += 1
    await asyncio.sleep(0.01)
    return {"message": "slept 10 ms", "pid": os.getpid()}


@app.get("/slow")
async def slow() -> dict:
    global _served
    _served += 1
    await asyncio.sleep(0.2)
    return {"message": "slept 200 ms", "pid": os.getpid()}
