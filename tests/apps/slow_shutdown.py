"""Lifespan shutdown takes SLOW_SHUTDOWN_SECONDS (default 60): more than any stop budget in the tests,
so the shim's own deadline decides when it ends. $SHUTDOWN_STARTED names a file written when it begins."""

import asyncio
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI

SHUTDOWN_SECONDS = float(os.environ.get("SLOW_SHUTDOWN_SECONDS", "60"))


@asynccontextmanager
async def lifespan(app: FastAPI):
    yield
    started = os.environ.get("SHUTDOWN_STARTED", "")
    if started:
        with open(started, "w") as marker:
            marker.write(str(os.getpid()))
    await asyncio.sleep(SHUTDOWN_SECONDS)


app = FastAPI(lifespan=lifespan)


@app.get("/")
async def who_answered() -> dict:
    return {"pid": os.getpid()}
