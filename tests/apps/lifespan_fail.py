"""Imports fine, then lifespan startup raises (a database that cannot be reached, say)."""

from contextlib import asynccontextmanager

from fastapi import FastAPI


@asynccontextmanager
async def lifespan(app: FastAPI):
    raise RuntimeError("boom in lifespan: lifespan_fail")
    yield  # unreachable; makes this an async generator


app = FastAPI(lifespan=lifespan)


@app.get("/")
async def never_served() -> dict:
    return {}
