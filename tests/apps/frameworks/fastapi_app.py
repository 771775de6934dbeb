"""FastAPI: the same four endpoints as every app of the framework matrix (see plain_asgi.py)."""

import asyncio
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI, WebSocket

state = {"startup_ran": False}


@asynccontextmanager
async def lifespan(app: FastAPI):
    state["startup_ran"] = True
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/")
async def hello() -> dict:
    return {"framework": "fastapi", "pid": os.getpid(), **state}


@app.get("/slow")
async def slow(s: float = 1.0, started: str = "") -> dict:
    if started:
        with open(started, "w") as marker:
            marker.write(str(os.getpid()))
    await asyncio.sleep(s)
    return {"framework": "fastapi", "pid": os.getpid(), "slept": s}


@app.websocket("/ws")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(f"fastapi:{text}")
