"""A plain ASGI callable, no framework: what every app of the matrix serves.

    GET /                  {"framework", "pid", "startup_ran"}  (startup_ran: lifespan startup ran)
    GET /slow?s=S&started=FILE   writes FILE once in the handler, sleeps S seconds, answers
    WS  /ws                echoes each text message as "<framework>:<text>"
"""

import asyncio
import json
import os
from urllib.parse import parse_qs

state = {"startup_ran": False}


async def send_json(send, payload: dict) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def http(scope, receive, send) -> None:
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    if scope["path"] == "/slow":
        if "started" in query:
            with open(query["started"], "w") as marker:
                marker.write(str(os.getpid()))
        seconds = float(query.get("s", "1"))
        await asyncio.sleep(seconds)
        await send_json(send, {"framework": "plain", "pid": os.getpid(), "slept": seconds})
    elif scope["path"] == "/":
        await send_json(send, {"framework": "plain", "pid": os.getpid(), **state})
    else:
        await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


async def websocket(scope, receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": f"plain:{message.get('text')}"})
        elif message["type"] == "websocket.disconnect":
            return


async def lifespan(scope, receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            state["startup_ran"] = True
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send) -> None:
    await {"http": http, "websocket": websocket, "lifespan": lifespan}[scope["type"]](scope, receive, send)
