"""What this worker publishes on its board entry (board.py), apart from the accepting itself.

uvicorn's ``server_state.connections`` becomes a CountingSet, so every connection made or lost
publishes the count at once (plus, under the even policy, the connections accepted whose protocol
is still being made); each tick publishes the requests in flight (the running tasks minus the
WebSocket sessions, which run as long as the session) and the event loop's lag.
"""

from __future__ import annotations

from typing import Any

from arbiter_worker.accept import EvenBalance
from arbiter_worker.board import Board, CountingSet


def is_http(connection: object) -> bool:
    """HTTP protocols (drain.py) can close after a response; WebSocket sessions cannot."""
    return hasattr(connection, "close_after_next_response")


class BoardReport:
    def __init__(self, board: Board, balance: EvenBalance | None) -> None:
        self._board = board
        self._balance = balance
        self.connections: CountingSet[Any] = CountingSet(self._connections_changed, is_http)
        """To be uvicorn's server_state.connections."""

    def _connections_changed(self, count: int) -> None:
        pending = self._balance.pending() if self._balance is not None else 0
        self._board.publish_connections(count + pending)
        if self._balance is not None:
            self._balance.connections_changed()

    def tick(self, now: float, tasks: int) -> None:
        self._board.tick(now, max(0, tasks - self.connections.not_http))
