"""Heartbeats: proof that the event loop itself is running.

A callback re-armed with loop.call_later, not a thread: a loop blocked by sync code in an
``async def`` sends nothing, which is exactly what the arbiter must notice. The counts are uvicorn's
own (ServerState.total_requests, bumped when a response completes; ServerState.tasks, the running
request and WebSocket tasks), so counting adds no work per request.
"""

from __future__ import annotations

import asyncio

from uvicorn.server import ServerState

from arbiter_worker.channel import Channel


class Heartbeat:
    def __init__(self, channel: Channel, interval: float, state: ServerState) -> None:
        self._channel = channel
        self._interval = interval
        self._state = state
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | asyncio.Handle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._handle = loop.call_soon(self._beat)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _beat(self) -> None:
        assert self._loop is not None
        self._channel.send(
            {"type": "heartbeat", "requests": self._state.total_requests, "in_flight": len(self._state.tasks)}
        )
        self._handle = self._loop.call_later(self._interval, self._beat)
