"""A graceful stop never leaves a new client hanging.

At TERM /healthz turns 503 at once; with --lame-duck S the listeners keep accepting for S seconds
(a load balancer notices the 503 meanwhile), then the arbiter closes its copies of the listeners
and each worker takes what is already queued on its own copies before closing them. From then on a
new client is refused at once (ECONNREFUSED, which balancers retry), while requests in flight finish.
"""

import signal
import socket
import threading
import time
from typing import Optional

import httpx
import pytest

from conftest import free_port, wait_until

PROBE_TIMEOUT = 1.0


def probe(bind: str, timeout: float = PROBE_TIMEOUT) -> str:
    """One new client: 'answered', 'refused' (ECONNREFUSED, or reset before any byte) or 'hung'
    (neither within timeout seconds of connecting)."""
    host, port = bind.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            client.settimeout(max(0.01, deadline - time.monotonic()))
            head = client.recv(16)
    except ConnectionRefusedError:
        return "refused"
    except (ConnectionResetError, BrokenPipeError):
        return "refused"
    except socket.timeout:
        return "hung"
    if head.startswith(b"HTTP/1.1 200"):
        return "answered"
    return "refused" if head == b"" else f"unexpected {head!r}"


def start_slow_request(arbiter, seconds: float) -> tuple[threading.Thread, dict]:
    """GET /slow in a thread; returns once the handler runs (the request is in flight)."""
    marker = arbiter.workdir / "slow-request-started"
    result: dict = {}

    def request():
        try:
            result["status"] = arbiter.get(f"/slow?s={seconds}&started={marker}", timeout=seconds + 30).status_code
        except Exception as error:  # reported by the test's assertion
            result["error"] = repr(error)

    sender = threading.Thread(target=request)
    sender.start()
    wait_until(marker.exists, 10, "the slow request to reach its handler", interval=0.01)
    return sender, result


def healthz_status(address: str) -> Optional[int]:
    try:
        with httpx.Client(base_url=f"http://{address}", timeout=1.0) as client:
            return client.get("/healthz").status_code
    except httpx.HTTPError:
        return None


def log_says(arbiter, text: str) -> bool:
    return text in arbiter.output()


@pytest.mark.parametrize("mode", [[], ["--reuse-port"]], ids=["shared", "reuse-port"])
def test_client_connecting_during_a_graceful_stop_is_answered_or_refused_within_1s(arbiter, mode):
    arbiter.run(workers=2, extra=mode)
    arbiter.wait_ready(2)
    sender, result = start_slow_request(arbiter, seconds=4)

    arbiter.signal(signal.SIGTERM)
    wait_until(lambda: log_says(arbiter, "graceful stop"), 5, "the arbiter to log the stop")
    outcomes = []
    # Probe new clients for as long as the slow request keeps the stop under way (bounded: 40).
    while sender.is_alive() and len(outcomes) < 40:
        outcomes.append(probe(arbiter.bind))
    sender.join(timeout=30)

    assert result == {"status": 200}
    assert len(outcomes) >= 5, f"too few probes during the stop to show anything: {outcomes}"
    assert set(outcomes) <= {"answered", "refused"}, outcomes
    assert arbiter.wait_exit(30) == 0


def test_lame_duck_serves_new_clients_while_healthz_says_503(arbiter):
    metrics = f"127.0.0.1:{free_port()}"
    arbiter.run(workers=2, extra=["--lame-duck", "2", "--metrics", metrics])
    arbiter.wait_ready(2)

    arbiter.signal(signal.SIGTERM)
    signalled = time.monotonic()
    wait_until(lambda: healthz_status(metrics) == 503, 1.0, "/healthz 503 within 1 s of TERM")
    served_late = False
    for _ in range(5000):  # bounded in count and to 1.2 s; one new connection each
        elapsed = time.monotonic() - signalled
        if elapsed >= 1.2:
            break
        outcome = probe(arbiter.bind)
        assert outcome == "answered", f"{elapsed:.2f} s into a 2 s lame duck a new client was {outcome}"
        served_late = served_late or elapsed >= 1.0
    assert served_late, "no client connected 1 s after TERM"
    assert healthz_status(metrics) == 503
    assert arbiter.running()


@pytest.mark.parametrize("mode", [[], ["--reuse-port"]], ids=["shared", "reuse-port"])
def test_after_the_lame_duck_new_clients_are_refused_while_a_slow_request_completes(arbiter, mode):
    arbiter.run(workers=2, extra=["--lame-duck", "1", *mode])
    arbiter.wait_ready(2)
    sender, result = start_slow_request(arbiter, seconds=4)

    arbiter.signal(signal.SIGTERM)
    wait_until(lambda: log_says(arbiter, "lame duck over"), 3, "the end of the 1 s lame duck")
    # The workers close their copies right after the arbiter's: from then on every client is refused.
    wait_until(lambda: probe(arbiter.bind) == "refused", 2, "a new client to be refused")
    later = [probe(arbiter.bind) for _ in range(20)]
    assert later == ["refused"] * 20, later
    assert sender.is_alive(), "the slow request should still be in flight while new clients are refused"

    sender.join(timeout=30)
    assert result == {"status": 200}
    assert arbiter.wait_exit(30) == 0


def test_a_second_term_during_the_lame_duck_ends_it_at_once(arbiter):
    arbiter.run(workers=1, extra=["--lame-duck", "60"])
    arbiter.wait_ready(1)
    arbiter.signal(signal.SIGTERM)
    wait_until(lambda: log_says(arbiter, "lame duck for"), 5, "the lame duck to begin")
    assert probe(arbiter.bind) == "answered"

    arbiter.signal(signal.SIGTERM)
    assert arbiter.wait_exit(10) == 0
    assert "during the lame duck: ending it now" in arbiter.output()


def test_int_during_the_lame_duck_stops_quickly(arbiter):
    arbiter.run(workers=1, extra=["--lame-duck", "60"])
    arbiter.wait_ready(1)
    sender, _ = start_slow_request(arbiter, seconds=30)
    arbiter.signal(signal.SIGTERM)
    wait_until(lambda: log_says(arbiter, "lame duck for"), 5, "the lame duck to begin")

    started = time.monotonic()
    arbiter.signal(signal.SIGINT)
    assert arbiter.wait_exit(10) == 0
    sender.join(timeout=30)
    assert time.monotonic() - started < 2.5
