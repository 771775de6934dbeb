"""Lifespan startup waits until the file named by $BOOT_GATE exists: a test decides the moment the
worker becomes ready (e.g. just after the arbiter's boot timeout fired)."""

import asyncio
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI

GATE = os.environ.get("BOOT_GATE", "")


@asynccontextmanager
async def lifespan(app: FastAPI):
    # asyncio.sleep keeps the loop (and so the heartbeats) running while the gate is shut.
    while GATE and not os.path.exists(GATE):
        await asyncio.sleep(0.01)
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/")
async def who_answered() -> dict:
    return {"pid": os.getpid()}
