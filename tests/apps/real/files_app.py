"""Opens files at import, as apps do: an audit log with open() and a logging.FileHandler, both in
FILES_APP_DIR. Every request to /write?tag=T writes "T <pid>" to each of them: after a fork the
workers share the zygote's open files, and the bytes must land in those files.

GET /write?tag=T   one line in audit.log (open()) and one in app.log (logging.FileHandler)
GET /              which process answered
"""

import logging
import os

from fastapi import FastAPI

DIRECTORY = os.environ["FILES_APP_DIR"]
audit = open(os.path.join(DIRECTORY, "audit.log"), "a", buffering=1)  # line-buffered: each line is a write
logger = logging.getLogger("files_app")
logger.setLevel(logging.INFO)
logger.propagate = False
handler = logging.FileHandler(os.path.join(DIRECTORY, "app.log"))
handler.setFormatter(logging.Formatter("%(message)s"))
logger.addHandler(handler)

app = FastAPI()


@app.get("/")
async def who_answered() -> dict:
    return {"pid": os.getpid()}


@app.get("/write")
async def write(tag: str) -> dict:
    audit.write(f"{tag} {os.getpid()}\n")
    logger.info("%s %d", tag, os.getpid())
    return {"pid": os.getpid(), "tag": tag}
