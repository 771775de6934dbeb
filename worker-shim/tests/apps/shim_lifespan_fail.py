"""Imports fine; lifespan startup raises (a database that cannot be reached)."""

from contextlib import asynccontextmanager

from starlette.applications import Starlette


def connect_to_database() -> None:
    raise RuntimeError("boom in lifespan: shim_lifespan_fail")


@asynccontextmanager
async def lifespan(app):
    connect_to_database()
    yield


app = Starlette(lifespan=lifespan)
