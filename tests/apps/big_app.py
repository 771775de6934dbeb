"""An app whose import builds BIG_APP_MB (default 150) MiB of Python objects, as real apps do at import
(a loaded model, a catalogue, a routing table): what --preload shares between the workers."""

import os

from fastapi import FastAPI

TARGET_BYTES = int(os.environ.get("BIG_APP_MB", "150")) * 1024 * 1024
ENTRY_BYTES = 250  # a small dict with a str and an int: roughly what each entry costs

catalogue = [{"sku": f"item-{i:09d}", "price": i % 9973} for i in range(TARGET_BYTES // ENTRY_BYTES)]
lookup = {entry["sku"]: entry for entry in catalogue[: len(catalogue) // 4]}

app = FastAPI()


@app.get("/")
async def who_answered() -> dict:
    return {"pid": os.getpid(), "worker_id": os.environ.get("ARBITER_WORKER_ID"), "items": len(catalogue)}


@app.get("/gc")
async def collect() -> dict:
    import gc

    return {"pid": os.getpid(), "collected": gc.collect()}
