"""Logging for uvicorn's loggers (uvicorn, uvicorn.error, uvicorn.access) and the shim's own.

A worker's stdout and stderr are one pipe to the arbiter, which writes the lines out (and drops them,
counted, when its output cannot keep up), so a write here waits only for the arbiter's loop, never for
a slow log consumer. A log write that fails anyway (EPIPE once the arbiter is gone, EIO) loses the
line and never raises into the app or into boot: the handlers' handleError is quiet and
sys.stdout/sys.stderr are wrapped (QuietStream). stdout is line-buffered, so a print shows up when it
is made, in order with the log lines, as on a terminal.

Lines must say who wrote them (the arbiter adds the same prefix to the lines that lack it, prints):
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
import io
import json
import logging
import os
import sys
from typing import Any, TextIO

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


class QuietStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler whose failed writes lose the record quietly, instead of printing a traceback
    to the very stream that just failed (logging's default handleError)."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        pass


class QuietStream(io.TextIOBase):
    """sys.stdout or sys.stderr for a worker: a write or flush that fails with OSError loses the text."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError:
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError:
            pass

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._stream.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self._stream.errors

    @property
    def buffer(self) -> Any:
        return self._stream.buffer

    @property
    def wrapped(self) -> TextIO:
        return self._stream


def quiet_std_streams() -> None:
    """Wraps sys.stdout and sys.stderr (once) in QuietStream; stdout becomes line-buffered."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None or isinstance(stream, QuietStream):
            continue
        reconfigure = getattr(stream, "reconfigure", None)
        if name == "stdout" and reconfigure is not None:
            try:
                reconfigure(line_buffering=True)
            except (OSError, ValueError):
                pass
        setattr(sys, name, QuietStream(stream))


def adopt_stdio(fd: int) -> None:
    """A forked worker: point stdout and stderr at fd, its own output pipe to the arbiter, then close fd."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


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
    handler = {"class": f"{__name__}.QuietStreamHandler", "stream": "ext://sys.stderr", "filters": ["source"]}
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
