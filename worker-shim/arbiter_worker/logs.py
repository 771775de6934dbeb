"""Logging for uvicorn's loggers (uvicorn, uvicorn.error, uvicorn.access) and the shim's own.

Every worker writes to the arbiter's stderr, so lines must say who wrote them:
- text: ``[worker 2 pid 1234] INFO:     message`` (uvicorn's formatter behind a worker prefix);
- json: one object per line: ts, level, logger, worker, pid, message (+ exc with the traceback).
Access lines go to stderr too, so a worker's lines stay in order in one stream.
The result is a logging.config dict. An exec'd worker hands it to uvicorn's Config(log_config=...),
which applies it and then --log-level and --access-log/--no-access-log on top, exactly as uvicorn
does, before the app is imported. A zygote (--preload) applies it itself before it imports the app,
and the workers it forks pass log_config=None: a second dictConfig after the fork would close every
handler the app added at import. So the prefix is not baked into the format: a filter on our
handlers stamps each record with whoever this process is now (``set_source``), and ``pid`` is the
record's own.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys
from typing import Any

SHIM_LOGGER = "arbiter_worker"

_source = {"label": "worker ?", "worker": "?"}


def set_source(worker_id: str, label: str | None = None) -> None:
    """Who writes the lines from now on: ``worker ID``, or ``label`` (the zygote says so)."""
    _source["worker"] = worker_id
    _source["label"] = label or f"worker {worker_id}"


class SourceFilter(logging.Filter):
    """Stamps every record with ``arbiter_source`` (e.g. ``worker 2``); drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.arbiter_source = _source["label"]
        record.arbiter_worker = _source["worker"]
        return True


class JsonFormatter(logging.Formatter):

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.datetime.fromtimestamp(record.created, tz=datetime.timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "worker": getattr(record, "arbiter_worker", _source["worker"]),
            "pid": record.process if record.process is not None else os.getpid(),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def logging_config(log_format: str, worker_id: str, label: str | None = None) -> dict[str, Any]:
    set_source(worker_id, label)
    prefix = "[%(arbiter_source)s pid %(process)d] "
    if log_format == "json":
        formatter: dict[str, Any] = {"()": JsonFormatter}
        access_formatter = formatter
    else:
        formatter = {"()": "uvicorn.logging.DefaultFormatter", "fmt": prefix + "%(levelprefix)s %(message)s"}
        access_formatter = {
            "()": "uvicorn.logging.AccessFormatter",
            "fmt": prefix + '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
        }
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "filters": ["source"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"source": {"()": SourceFilter}},
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
