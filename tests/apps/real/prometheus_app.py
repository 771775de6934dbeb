"""prometheus_client in multiprocess mode, as its docs set it up: PROMETHEUS_MULTIPROC_DIR is set
before the import, the metrics live in mmap'd files per process there, and /metrics aggregates
every process's files with a MultiProcessCollector.

GET /hit      counts one hit (arbiter_test_hits_total) and says which process answered
GET /metrics  the aggregated exposition
GET /         which process answered
"""

import os

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest, multiprocess

HITS = Counter("arbiter_test_hits", "Requests to /hit, over every worker")

app = FastAPI()


@app.get("/")
async def who_answered() -> dict:
    return {"pid": os.getpid()}


@app.get("/hit")
async def hit() -> dict:
    HITS.inc()
    return {"pid": os.getpid()}


@app.get("/metrics")
async def metrics() -> Response:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
