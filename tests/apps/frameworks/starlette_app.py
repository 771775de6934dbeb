"""Starlette: the same four endpoints as every app of the framework matrix (see plain_asgi.py)."""

import asyncio
import os
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

state = {"startup_ran": False}


@asynccontextmanager
async def lifespan(app: Starlette):
    state["startup_ran"] = True
    yield


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"framework": "starlette", "pid": os.getpid(), **state})


async def slow(request: Request) -> JSONResponse:
    seconds = float(request.query_params.get("s", "1"))
    started = request.query_params.get("started")
    if started:
        with open(started, "w") as marker:
            marker.write(str(os.getpid()))
    await asyncio.sleep(seconds)
    return JSONResponse({"framework": "starlette", "pid": os.getpid(), "slept": seconds})


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(f"starlette:{text}")


app = Starlette(routes=[Route("/", hello), Route("/slow", slow), WebSocketRoute("/ws", echo)], lifespan=lifespan)
