"""Replacing workers that are alive but unwell: a blocked event loop, too many requests, too much
memory. Each is detected from outside the app and ends with a new worker serving."""

import threading
import time

import httpx

from conftest import pid_alive, wait_until


def _replaced(arbiter, old_pid: int, count: int = 1):
    def check():
        now = arbiter.workers()
        return now if len(now) == count and old_pid not in now else None
    return check


def test_worker_with_a_blocked_event_loop_is_killed_after_timeout_with_its_stack_logged(arbiter, spawner):
    timeout = 2.0
    heartbeat_interval = timeout / 4  # what the arbiter passes in ARBITER_HEARTBEAT_INTERVAL
    arbiter.run(app="blocking:app", workers=1, extra=["--timeout", str(timeout), *spawner])
    (victim,) = arbiter.wait_ready(1)

    def block():
        try:
            arbiter.get("/block?s=60", timeout=60)
        except httpx.HTTPError:
            pass  # the worker is killed under this request: that is the point

    blocked_at = time.monotonic()  # the loop blocks a few milliseconds later, when the request arrives
    threading.Thread(target=block, daemon=True).start()

    wait_until(lambda: "no heartbeat for" in arbiter.output(), timeout + heartbeat_interval + 5,
               "the arbiter to report the missing heartbeats", interval=0.01)
    detected_after = time.monotonic() - blocked_at
    assert detected_after <= timeout + heartbeat_interval, f"detected only {detected_after:.2f}s after the loop blocked"
    wait_until(_replaced(arbiter, victim), 30, f"blocked worker {victim} to be replaced")
    assert not pid_alive(victim)
    assert "block_the_event_loop" in arbiter.output(), "the hung worker's Python stack was not logged"
    wait_until(arbiter.try_get_json, 30, "the replacement worker to serve")


def test_max_requests_replaces_the_worker_without_failing_a_request(arbiter, spawner):
    arbiter.run(workers=1, extra=["--max-requests", "5", *spawner])
    arbiter.wait_ready(1)
    pids, failures = set(), []

    def serve_until_replaced():
        try:
            pids.add(arbiter.get("/", timeout=10).json()["pid"])
        except httpx.HTTPError as error:
            failures.append(repr(error))
        return len(pids) >= 2 or len(failures) > 0

    wait_until(serve_until_replaced, 60, "a second worker pid after --max-requests 5", interval=0.05)
    assert failures == []


def test_worker_over_max_memory_is_replaced(arbiter, spawner):
    arbiter.run(app="leaky:app", workers=1, extra=["--max-memory", "150M", *spawner], env={"LEAK_KB": "10240"})
    (victim,) = arbiter.wait_ready(1)

    for _ in range(15):  # 150 MiB kept on top of the worker's own ~50 MiB
        arbiter.try_get_json(timeout=10)

    wait_until(_replaced(arbiter, victim), 60, f"worker {victim} over --max-memory to be replaced")
    wait_until(arbiter.try_get_json, 30, "the replacement worker to serve")
