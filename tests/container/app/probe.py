"""The app the container tests serve: a slow endpoint that says when it is in flight, and one that
orphans children (what a careless app does with subprocesses), so PID 1 must reap them."""

import asyncio
import os
import subprocess

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def who_answered() -> dict:
    return {"pid": os.getpid(), "worker_id": os.environ.get("ARBITER_WORKER_ID")}


@app.get("/slow")
async def slow(s: float = 1.0, marker: str = "") -> dict:
    if marker:
        with open(marker, "w") as started:  # the test waits for this before it signals
            started.write(str(os.getpid()))
    await asyncio.sleep(s)
    return {"pid": os.getpid(), "slept": s}


@app.get("/orphan")
def orphan(count: int = 3, s: float = 0.3) -> dict:
    # sh starts each sleep in the background and exits at once: the sleeps lose their parent and
    # the kernel hands them to PID 1, which must wait() for them when they exit after s seconds.
    script = " ".join(f"sleep {s} >/dev/null 2>&1 & echo $!;" for _ in range(count))
    output = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, check=True).stdout
    return {"orphans": [int(pid) for pid in output.split()]}
