"""The pool: N workers serve, a dead worker is replaced, a crashing app does not spin the arbiter,
and workers never outlive the arbiter."""

import os
import signal
import threading
import time

import httpx

from conftest import cpu_seconds, pid_alive, port_is_free, wait_until


def test_three_workers_answer_from_three_distinct_pids(arbiter):
    arbiter.run(workers=3)
    workers = arbiter.wait_ready(3)

    answered = arbiter.answering_pids(3)

    assert answered == workers


def test_worker_killed_with_sigkill_is_replaced_by_a_new_serving_worker(arbiter, spawner):
    arbiter.run(workers=2, extra=spawner)
    before = arbiter.wait_ready(2)
    victim = arbiter.try_get_json()["pid"]

    os.kill(victim, signal.SIGKILL)

    after = wait_until(
        lambda: (lambda now: now if len(now) == 2 and victim not in now else None)(arbiter.workers()),
        20, f"a replacement for worker {victim}",
    )
    replacement = (after - before).pop()
    wait_until(lambda: (arbiter.try_get_json() or {}).get("pid") == replacement, 20,
               f"the replacement worker {replacement} to answer", interval=0.01)
    assert arbiter.running()


def _hammer(arbiter, seconds: float, threads: int = 4) -> dict:
    """Send requests from `threads` threads for `seconds` while recording every worker pid that
    exists meanwhile. Returns counts. Bounded in time; each request has a short timeout."""
    stop_at = time.monotonic() + seconds
    counts = {"requests": 0, "ok": 0}
    lock = threading.Lock()

    def send():
        while time.monotonic() < stop_at:
            try:
                ok = arbiter.get("/", timeout=0.5).status_code == 200
            except httpx.HTTPError:
                ok = False
            with lock:
                counts["requests"] += 1
                counts["ok"] += ok

    senders = [threading.Thread(target=send) for _ in range(threads)]
    for sender in senders:
        sender.start()
    while time.monotonic() < stop_at:
        arbiter.workers()  # records every pid in arbiter.workers_seen
        time.sleep(0.02)
    for sender in senders:
        sender.join(timeout=5)
    return counts


def test_app_crashing_every_few_requests_is_restarted_at_a_rate_bounded_by_backoff(arbiter, spawner):
    arbiter.run(app="crash_later:app", workers=1, env={"CRASH_EVERY": "2"}, extra=spawner)
    arbiter.wait_ready(1)
    arbiter.workers_seen.clear()

    counts = _hammer(arbiter, seconds=8)

    restarts = len(arbiter.workers_seen) - 1
    assert arbiter.running(), "the arbiter must survive a crashing app"
    assert restarts >= 1, f"the app never crashed: {counts}"
    assert restarts * 4 <= counts["requests"], f"{restarts} restarts for {counts}"
    assert restarts <= 12, f"{restarts} restarts in 8 s: backoff is not bounding them"


def test_crashing_app_does_not_make_the_arbiter_spin_the_cpu(arbiter):
    arbiter.run(app="crash_later:app", workers=1, env={"CRASH_EVERY": "1"})
    # CRASH_EVERY=1: the first request kills each worker, so wait for a process, not an answer.
    wait_until(lambda: arbiter.workers(), 30, "a first worker")
    before = cpu_seconds(arbiter.pid)

    _hammer(arbiter, seconds=6, threads=2)

    used = cpu_seconds(arbiter.pid) - before
    assert arbiter.running()
    assert used < 1.5, f"the arbiter used {used:.2f}s of CPU in 6s of a crash loop"


def test_arbiter_killed_with_sigkill_takes_every_worker_with_it_and_frees_the_port(arbiter, spawner):
    arbiter.run(workers=2, extra=spawner)
    workers = arbiter.wait_ready(2)
    host, port = arbiter.bind.rsplit(":", 1)

    arbiter.signal(signal.SIGKILL)
    arbiter.wait_exit(5)

    wait_until(lambda: not any(pid_alive(pid) for pid in workers), 1.0,
               f"workers {workers} to die with the arbiter", interval=0.02)
    assert port_is_free(host, int(port)), f"{arbiter.bind} is still in use after the arbiter and its workers died"


def test_worker_environment_drops_systemd_variables_and_names_the_worker(arbiter):
    arbiter.run(workers=2, env={
        # Nobody listens on this abstract socket: notifications to it are harmless.
        "NOTIFY_SOCKET": "@arbiter-test-nobody",
        "WATCHDOG_USEC": "60000000",
        # LISTEN_PID names another process, so the arbiter must not adopt fd 3.
        "LISTEN_FDS": "1", "LISTEN_PID": "1", "LISTEN_FDNAMES": "nothing",
    })
    arbiter.wait_ready(2)

    environment = arbiter.get("/env").json()

    leaked = {name for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS",
                                "LISTEN_PID", "LISTEN_FDNAMES") if name in environment}
    assert not leaked, f"the worker inherited {leaked}"
    assert environment.get("ARBITER_WORKER_ID") in {"1", "2"}
