"""A raw ASGI app for the shim's tests: fast, slow, loop-blocking and WebSocket endpoints."""

import asyncio
import os
import time
from urllib.parse import parse_qs

started = False


def block_the_event_loop(seconds: float) -> None:
    time.sleep(seconds)


async def app(scope, receive, send):
    global started
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await asyncio.sleep(float(os.environ.get("SHIM_BOOT_SECONDS", "0")))
                started = True
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": f"{os.getpid()}:{message.get('text')}"})
    query = parse_qs(scope["query_string"].decode())
    seconds = float(query.get("s", ["0"])[0])
    if scope["path"] == "/slow":
        await asyncio.sleep(seconds)
    elif scope["path"] == "/block":
        block_the_event_loop(seconds)
    body = f'{{"pid": {os.getpid()}, "started": {str(started).lower()}}}'.encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app():
    """For --factory."""
    return app
