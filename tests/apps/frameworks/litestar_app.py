"""Litestar: the same four endpoints as every app of the framework matrix (see plain_asgi.py)."""

import asyncio
import os

from litestar import Litestar, WebSocket, get, websocket

state = {"startup_ran": False}


def on_startup() -> None:
    state["startup_ran"] = True


@get("/")
async def hello() -> dict:
    return {"framework": "litestar", "pid": os.getpid(), **state}


@get("/slow")
async def slow(s: float = 1.0, started: str = "") -> dict:
    if started:
        with open(started, "w") as marker:
            marker.write(str(os.getpid()))
    await asyncio.sleep(s)
    return {"framework": "litestar", "pid": os.getpid(), "slept": s}


@websocket("/ws")
async def echo(socket: WebSocket) -> None:
    await socket.accept()
    while True:
        text = await socket.receive_text()
        await socket.send_text(f"litestar:{text}")


app = Litestar(route_handlers=[hello, slow, echo], on_startup=[on_startup])
