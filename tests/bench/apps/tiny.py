"""A minimal raw ASGI app: the cheapest worker, for the 64-worker /metrics measurement."""

import os
import time


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                ready_dir = os.environ.get("BENCH_READY_DIR")
                if ready_dir:
                    with open(os.path.join(ready_dir, str(os.getpid())), "w") as f:
                        f.write(repr(time.time()))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b'{"message":"hello"}'
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})
