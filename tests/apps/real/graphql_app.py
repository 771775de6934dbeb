"""A strawberry GraphQL schema served by FastAPI at /graphql (strawberry-graphql[fastapi]).

query { worker { pid } square(n: Int!) }   GET (query string) or POST (JSON) at /graphql
GET /   which process answered (for the harness)
"""

import os

import strawberry
from fastapi import FastAPI
from strawberry.fastapi import GraphQLRouter


@strawberry.type
class Worker:
    pid: int


@strawberry.type
class Query:
    @strawberry.field
    def worker(self) -> Worker:
        return Worker(pid=os.getpid())

    @strawberry.field
    def square(self, n: int) -> int:
        return n * n


app = FastAPI()
app.include_router(GraphQLRouter(strawberry.Schema(query=Query)), prefix="/graphql")


@app.get("/")
async def who_answered() -> dict:
    return {"pid": os.getpid()}
