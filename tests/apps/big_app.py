"""An app whose import builds BIG_APP_MB (default 150) MiB of Python objects, as real apps do at import
(a loaded model, a catalogue, a routing table): what --preload shares between the workers."""

import os

from fastapi import FastAPI

TARGET_BYTES = int(os.environ.get("BIG_APP_MB", "150")) * 1024 * 1024
ENTRY_BYTES = 310  # measured (Python 3.11): an Item, its attribute values and its share of the index


class Item:
    """Like a row of a catalogue or a node of a routing table: an object the garbage collector
    tracks (a dict holding only strings and numbers would be untracked by CPython and never
    visited by a collection, which is not what real apps' objects are like)."""

    def __init__(self, index: int) -> None:
        self.sku = f"item-{index:09d}"
        self.price = index % 9973
        self.tags = [index % 7, index % 11]


catalogue = [Item(i) for i in range(TARGET_BYTES // ENTRY_BYTES)]
lookup = {item.sku: item for item in catalogue[: len(catalogue) // 4]}

app = FastAPI()


@app.get("/")
async def who_answered() -> dict:
    return {"pid": os.getpid(), "worker_id": os.environ.get("ARBITER_WORKER_ID"), "items": len(catalogue)}


@app.get("/gc")
async def collect() -> dict:
    import gc

    return {"pid": os.getpid(), "collected": gc.collect()}
