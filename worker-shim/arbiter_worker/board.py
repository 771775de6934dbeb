"""The board: this worker's entry in the arbiter's shared page of gauges (docs/worker-channel.md).

The arbiter passes a memfd (ARBITER_BOARD_FD) and the index of this worker's entry
(ARBITER_BOARD_INDEX). Each entry is eight aligned int64 values, 64 bytes; entry 0 is the header.
This worker writes only its own entry, with one store per value, and reads the others to know how
many connections the serving workers hold (the even accept policy in accept.py). The arbiter reads
every entry for status, metrics and autoscaling.
"""

from __future__ import annotations

import mmap
import os
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

MAGIC = 0x4152424954455231  # "ARBITER1"
VERSION = 1
ENTRY_BYTES = 64
WORDS = ENTRY_BYTES // 8

# Offsets (in int64 words) inside the header, entry 0.
IN_USE = 4

# Offsets (in int64 words) inside an entry.
PID, CONNECTIONS, SERVING, IN_FLIGHT, LAG_US, TICK_MS = range(6)

TICK_SECONDS = 0.1
"""uvicorn's main loop ticks every 0.1 s; on_tick publishes the gauges that need no per-request work."""
STALE_TICK_MS = 250
"""A peer whose last tick is older than this is blocked (sync code in its loop): it cannot accept now."""


class BoardInvalid(Exception):
    """The fd is not a board this shim understands: the arbiter has a bug, or is of another version."""


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class Board:
    def __init__(self, fd: int, index: int) -> None:
        try:
            self._map = mmap.mmap(fd, 0)
        except (OSError, ValueError) as exc:
            raise BoardInvalid(f"ARBITER_BOARD_FD={fd} cannot be mapped: {exc}") from None
        self._words = memoryview(self._map).cast("q")
        if len(self._words) < 2 * WORDS or self._words[0] != MAGIC or self._words[1] != VERSION:
            raise BoardInvalid(f"ARBITER_BOARD_FD={fd} is not a version {VERSION} board")
        self._entries = min(int(self._words[2]), len(self._words) // WORDS)
        if self._words[3] != ENTRY_BYTES or not 1 <= index < self._entries:
            raise BoardInvalid(f"ARBITER_BOARD_INDEX={index} is not an entry of the board ({self._entries} entries)")
        self._base = index * WORDS
        self._words[self._base + PID] = os.getpid()
        self._last_tick: float | None = None
        self._lags = [0, 0, 0]

    @classmethod
    def adopt(cls, fd: int | None, index: int | None) -> Board | None:
        """The board at fd (closed afterwards: the mapping keeps it), or None without one."""
        if fd is None or not index:
            return None
        try:
            return cls(fd, index)
        finally:
            os.close(fd)

    def publish_connections(self, count: int) -> None:
        self._words[self._base + CONNECTIONS] = count

    def set_serving(self, serving: bool) -> None:
        self._words[self._base + SERVING] = 1 if serving else 0

    def tick(self, now: float, in_flight: int) -> None:
        """Once per uvicorn tick: requests in flight, and how late this tick came (the loop's lag).

        The lag published is the worst of the last three ticks, so a sampler that looks every 250 ms
        sees every late tick."""
        if self._last_tick is not None:
            late = max(0.0, now - self._last_tick - TICK_SECONDS)
            self._lags = [*self._lags[1:], int(late * 1_000_000)]
        self._last_tick = now
        base = self._base
        self._words[base + IN_FLIGHT] = in_flight
        self._words[base + LAG_US] = max(self._lags)
        self._words[base + TICK_MS] = monotonic_ms()

    def serving_connections(self) -> tuple[int, int, int | None]:
        """(workers that can accept now, the connections they hold, the fewest any other holds),
        this worker included in the first two.

        A worker counts while it is serving and its loop ticked recently: one blocked by sync code
        cannot take connections, so the others must not hold off waiting for it."""
        words = self._words
        fresh = monotonic_ms() - STALE_TICK_MS
        workers = connections = 0
        fewest: int | None = None
        in_use = max(self._base // WORDS + 1, min(int(words[IN_USE]), self._entries))
        for base in range(WORDS, in_use * WORDS, WORDS):
            if words[base + SERVING] and (base == self._base or words[base + TICK_MS] >= fresh):
                held = words[base + CONNECTIONS]
                workers += 1
                connections += held
                if base != self._base and (fewest is None or held < fewest):
                    fewest = held
        return workers, connections, fewest

    def close(self) -> None:
        self._words.release()
        self._map.close()


class CountingSet(set[T]):
    """uvicorn's ServerState.connections, publishing its size on every change.

    uvicorn's protocols add themselves on connection_made and discard themselves on
    connection_lost, so the board always holds this worker's open connections. It also counts the
    members that are not HTTP (WebSocket sessions, whose task runs as long as the session): requests
    in flight are the running tasks minus those, so a worker holding idle WebSockets is not busy."""

    def __init__(self, on_change: Callable[[int], None], is_http: Callable[[T], bool]) -> None:
        super().__init__()
        self._on_change = on_change
        self._is_http = is_http
        self.not_http = 0

    def add(self, item: T) -> None:
        if item not in self:
            super().add(item)
            self.not_http += not self._is_http(item)
        self._on_change(len(self))

    def discard(self, item: object) -> None:
        if item in self:
            super().discard(item)
            self.not_http -= not self._is_http(item)  # type: ignore[arg-type]
        self._on_change(len(self))

    def remove(self, item: T) -> None:
        if item not in self:
            raise KeyError(item)
        self.discard(item)
