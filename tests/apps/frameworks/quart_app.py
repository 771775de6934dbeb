"""Quart: the same four endpoints as every app of the framework matrix (see plain_asgi.py)."""

import asyncio
import os

from quart import Quart, request, websocket

app = Quart(__name__)
state = {"startup_ran": False}


@app.before_serving
async def startup() -> None:
    state["startup_ran"] = True


@app.get("/")
async def hello() -> dict:
    return {"framework": "quart", "pid": os.getpid(), **state}


@app.get("/slow")
async def slow() -> dict:
    seconds = float(request.args.get("s", "1"))
    started = request.args.get("started")
    if started:
        with open(started, "w") as marker:
            marker.write(str(os.getpid()))
    await asyncio.sleep(seconds)
    return {"framework": "quart", "pid": os.getpid(), "slept": seconds}


@app.websocket("/ws")
async def echo() -> None:
    while True:
        text = await websocket.receive()
        await websocket.send(f"quart:{text}")
