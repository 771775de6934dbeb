"""Stopping: TERM drains (in-flight requests complete), INT stops at once."""

import signal
import threading
import time

from conftest import wait_until


def _start_slow_request(arbiter, seconds: float) -> tuple[threading.Thread, dict]:
    """Start GET /slow in a thread and return once the handler is running (request in flight)."""
    marker = arbiter.workdir / "slow-request-started"
    result: dict = {}

    def request():
        try:
            response = arbiter.get(f"/slow?s={seconds}&started={marker}", timeout=seconds + 30)
            result["status"] = response.status_code
        except Exception as error:  # reported by the test's assertion
            result["error"] = repr(error)

    sender = threading.Thread(target=request)
    sender.start()
    wait_until(marker.exists, 10, "the slow request to reach its handler", interval=0.01)
    return sender, result


def test_term_with_a_slow_request_in_flight_completes_it_and_exits_0(arbiter):
    arbiter.run(workers=2)
    arbiter.wait_ready(2)
    sender, result = _start_slow_request(arbiter, seconds=2)

    arbiter.signal(signal.SIGTERM)
    code = arbiter.wait_exit(30)
    sender.join(timeout=30)

    assert result == {"status": 200}
    assert code == 0


def test_int_stops_quickly_with_exit_0_even_with_a_slow_request_in_flight(arbiter):
    arbiter.run(workers=2)
    arbiter.wait_ready(2)
    sender, _ = _start_slow_request(arbiter, seconds=20)

    started = time.monotonic()
    arbiter.signal(signal.SIGINT)
    code = arbiter.wait_exit(10)
    elapsed = time.monotonic() - started
    sender.join(timeout=30)

    assert code == 0
    assert elapsed < 2.5, f"INT took {elapsed:.2f}s"
