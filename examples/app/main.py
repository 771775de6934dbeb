"""A small FastAPI app served by arbiter.

Run it from the repository root with ``./scripts/demo.sh``, or by hand::

    build/arbiter run -w 2 -b 127.0.0.1:8000 --python .venv/bin/python --chdir examples app.main:app

Every response says which worker answered (``worker`` is the slot number, ``pid`` the process), so
with several workers you can watch requests spread across them and watch a killed worker come back
with a new pid.
"""

import asyncio
import logging
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI, Query

# uvicorn configures this logger in every worker, so these lines share its format and level.
log = logging.getLogger("uvicorn.error")


def worker_identity() -> dict:
    return {"worker": os.environ.get("ARBITER_WORKER_ID", "?"), "pid": os.getpid()}


@asynccontextmanager
async def lifespan(app: FastAPI):
    # Open pools, warm caches, load models here: the arbiter reports a worker ready only after this
    # block has returned, so no request reaches a half-started worker.
    log.info("startup: worker %(worker)s pid %(pid)s", worker_identity())
    yield
    # Close pools here: this runs after the worker has drained its in-flight requests.
    log.info("shutdown: worker %(worker)s pid %(pid)s", worker_identity())


app = FastAPI(title="arbiter example", lifespan=lifespan)


@app.get("/")
async def hello() -> dict:
    return {"message": "hello from arbiter", **worker_identity()}


@app.get("/healthz")
async def healthz() -> dict:
    # What a load balancer polls: cheap, no dependencies, 200 while this worker can serve.
    return {"status": "ok"}


@app.get("/slow")
async def slow(ms: int = Query(1000, ge=0, le=60_000)) -> dict:
    # Awaiting (not time.sleep) keeps the event loop free: try `arbiter ctl reload` or SIGTERM while
    # a slow request is in flight and it still completes.
    await asyncio.sleep(ms / 1000)
    return {"slept_ms": ms, **worker_identity()}
