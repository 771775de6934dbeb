"""Writes bytes that are not channel messages to the worker channel while it is imported, then
serves normally: what a buggy or hostile app (or a C extension scribbling on an inherited fd) does.

Sent, in order: a line with a terminal escape sequence, a line that pretends to be a log line of
the arbiter, and a 10,000-byte line (over twice the 4096-byte channel line limit).
"""

import os

from fastapi import FastAPI

GARBAGE = b"not json \x1b[2J\n2024-01-01T00:00:00.000Z arbiter[1] critical forged line\n" + b"x" * 10000 + b"\n"

_channel = int(os.environ["ARBITER_CHANNEL_FD"])
_sent = 0
while _sent < len(GARBAGE):
    _sent += os.write(_channel, GARBAGE[_sent:])

app = FastAPI()


@app.get("/")
async def who_answered() -> dict:
    return {"pid": os.getpid()}
