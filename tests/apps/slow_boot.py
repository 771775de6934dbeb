"""Lifespan startup takes SLOW_BOOT_SECONDS (default 3) before the worker can serve."""

import asyncio
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI

BOOT_SECONDS = float(os.environ.get("SLOW_BOOT_SECONDS", "3"))


@asynccontextmanager
async def lifespan(app: FastAPI):
    # asyncio.sleep keeps the loop (and so the heartbeats) running: booting is slow, not hung.
    await asyncio.sleep(BOOT_SECONDS)
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/")
async def who_answered() -> dict:
    return {"pid": os.getpid(), "boot_seconds": BOOT_SECONDS}
