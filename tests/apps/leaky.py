"""Keeps LEAK_KB (default 1024) KiB per request for ever: a memory leak for --max-memory to catch."""

import os

from fastapi import FastAPI

LEAK_BYTES = int(os.environ.get("LEAK_KB", "1024")) * 1024

app = FastAPI()
kept: list[bytearray] = []


@app.get("/")
async def leak() -> dict:
    chunk = bytearray(LEAK_BYTES)
    # Touch every page so the memory is resident (counted in RSS), not just reserved.
    for offset in range(0, LEAK_BYTES, 4096):
        chunk[offset] = 1
    kept.append(chunk)
    return {"pid": os.getpid(), "kept_bytes": len(kept) * LEAK_BYTES}
