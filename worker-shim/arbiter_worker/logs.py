"""Logging for uvicorn's loggers (uvicorn, uvicorn.error, uvicorn.access) and the shim's own.

Every worker writes to the arbiter's stderr, so lines must say who wrote them:
- text: ``[worker 2 pid 1234] INFO:     message`` (uvicorn's formatter behind a worker prefix);
- json: one object per line: ts, level, logger, worker, pid, message (+ exc with the traceback).
Access lines go to stderr too, so a worker's lines stay in order in one stream.
The result is a logging.config dict handed to uvicorn's Config(log_config=...), which applies it and
then --log-level and --access-log/--no-access-log on top, exactly as uvicorn does.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys
from typing import Any

SHIM_LOGGER = "arbiter_worker"


class JsonFormatter(logging.Formatter):
    def __init__(self, worker_id: str) -> None:
        super().__init__()
        self._worker_id = worker_id

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.datetime.fromtimestamp(record.created, tz=datetime.timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "worker": self._worker_id,
            "pid": record.process if record.process is not None else os.getpid(),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def logging_config(log_format: str, worker_id: str) -> dict[str, Any]:
    prefix = f"[worker {worker_id} pid {os.getpid()}] "
    if log_format == "json":
        formatter: dict[str, Any] = {"()": JsonFormatter, "worker_id": worker_id}
        access_formatter = formatter
    else:
        formatter = {"()": "uvicorn.logging.DefaultFormatter", "fmt": prefix + "%(levelprefix)s %(message)s"}
        access_formatter = {
            "()": "uvicorn.logging.AccessFormatter",
            "fmt": prefix + '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
        }
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter, "access": access_formatter},
        "handlers": {
            "default": {**handler, "formatter": "default"},
            "access": {**handler, "formatter": "access"},
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
            SHIM_LOGGER: {"handlers": ["default"], "level": "INFO", "propagate": False},
        },
    }


def adopt_log_file(fd: int) -> None:
    """Point stdout and stderr at fd, the log file the arbiter reopened after a rotation, then close fd.

    The arbiter opens the new file itself and hands it over the channel, because a worker running as
    --user may not be allowed to open it (a root-owned 0640 file, as logrotate creates it).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
