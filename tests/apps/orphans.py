"""Starts processes the way careless apps do: /orphans leaves N grandchildren behind (each started
by a child that exits at once, so they are re-parented, and they exit soon after: zombies unless
someone reaps them); /child starts a long `sleep` in the worker's own process group; /daemon starts
one that escapes the group the way daemons do (a new session, its parent gone: re-parented to the
arbiter, the subreaper)."""

import os
import subprocess
import sys

from hello import app  # noqa: F401  (the same endpoints as hello)


@app.get("/orphans")
async def orphans(n: int = 20) -> dict:
    # sh starts n short sleeps in the background and exits: they are orphans at once.
    script = "; ".join(["(sleep 0.2 &)"] * n)
    subprocess.run(["/bin/sh", "-c", script], check=True)
    return {"pid": os.getpid(), "orphaned": n}


@app.get("/child")
async def child() -> dict:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    return {"pid": os.getpid(), "child": process.pid}


@app.get("/daemon")
async def daemon() -> dict:
    # sh starts `setsid sleep` in the background and exits: the sleep leads a session and process
    # group of its own, and its parent is gone.
    started = subprocess.run(
        ["/bin/sh", "-c", "setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $!"],
        check=True, capture_output=True, text=True,
    )
    return {"pid": os.getpid(), "daemon": int(started.stdout.strip())}
