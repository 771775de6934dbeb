"""Serves normally, then the process dies abruptly on every Kth request (K from CRASH_EVERY, default 3).

os._exit skips every cleanup, like a segfault in a C extension would: the arbiter sees a crash
(non-zero exit, not a requested stop) and must restart the slot with backoff.
"""

import os

from fastapi import FastAPI

CRASH_EVERY = int(os.environ.get("CRASH_EVERY", "3"))

app = FastAPI()
requests_served = 0


@app.get("/")
async def who_answered() -> dict:
    global requests_served
    requests_served += 1
    if requests_served % CRASH_EVERY == 0:
        os._exit(1)
    return {"pid": os.getpid(), "served": requests_served}
