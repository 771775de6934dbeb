"""Chaos soak: 60 s of keep-alive load while a random ready worker is SIGKILLed every 200 ms (while at
least two are ready: the point is restarts under load, not an outage), with a
reload and a scale 4 → 8 → 4 in between. Afterwards the arbiter is up with the target count ready,
the only failed requests are those the killed workers held (counted: the established connections of
each victim at the moment it was killed, each of which can lose at most its one request in flight),
and the arbiter's open fds and RSS are back where they started (no leak per restart).

Its family, one fault per test and bounded the same way: test_faults.py (the arbiter paused and
resumed, a crowded control socket, daemons started by the app, bursts of signals and scales)."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

from conftest import wait_until
from test_zero_drop import ctl, start_load  # noqa: F401  (start_load is a fixture)

SOAK_SECONDS = 60.0
SETTLE_SECONDS = 120.0
KILL_EVERY = 0.2
CONNECTIONS = 32
RSS_SLACK_KIB = 1024  # allocator noise; a leak of one handle per restart would be far more over ~300 restarts


def status(arbiter) -> dict:
    return json.loads(ctl(arbiter, "--json", "status"))


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def established_connections(pid: int, port: int) -> int:
    """The TCP connections on the server's port that this process holds (accepted, not closed)."""
    inodes = socket_inodes(pid)
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_chaos_soak_keeps_serving_and_leaks_nothing(arbiter, start_load):
    arbiter.run(workers=4, extra=["--no-access-log"])
    arbiter.wait_ready(4)
    port = int(arbiter.bind.rsplit(":", 1)[1])
    # Long enough to outlast the soak and the settle wait below, so the test is what stops it.
    load = start_load(arbiter, connections=CONNECTIONS, seconds=SOAK_SECONDS + SETTLE_SECONDS + 60)
    load.wait_answered(1000)
    fds_before, rss_before = open_fds(arbiter.pid), rss_kib(arbiter.pid)

    rng = random.Random(1234)
    kills, held_by_victims = 0, 0
    steps = {10.0: ("--no-wait", "reload"), 25.0: ("--no-wait", "scale", "8"), 40.0: ("--no-wait", "scale", "4")}
    started = time.monotonic()
    next_kill = started
    while (elapsed := time.monotonic() - started) < SOAK_SECONDS:
        for at in [at for at in steps if elapsed >= at]:
            ctl(arbiter, *steps.pop(at))
        ready = [w["pid"] for w in status(arbiter)["workers"] if w["state"] == "ready"]
        if len(ready) >= 2:  # keep one serving: the point is restarts under load, not an outage
            victim = rng.choice(ready)
            try:
                # Frozen first, so it accepts nothing between the count and the kill.
                os.kill(victim, signal.SIGSTOP)
                held_by_victims += established_connections(victim, port)
                os.kill(victim, signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass
        next_kill += KILL_EVERY
        time.sleep(max(0.0, next_kill - time.monotonic()))
        assert arbiter.running(), arbiter.tail(80)

    def settled():
        current = status(arbiter)
        return (current["target_workers"] == 4 and current["ready_workers"] == 4 and len(current["workers"]) == 4
                and current["state"] == "running")

    wait_until(settled, SETTLE_SECONDS, "4 ready workers and nothing else after the chaos")
    report = load.stop()
    fds_after, rss_after = open_fds(arbiter.pid), rss_kib(arbiter.pid)
    restarts = status(arbiter)["restarts"]
    print(f"chaos: {kills} kills, {restarts} restarts, {report['total']} requests, {report['failed']} failed "
          f"(victims held {held_by_victims} connections), fds {fds_before}->{fds_after}, RSS {rss_before}->{rss_after} KiB")

    # Kills wait for two ready workers, and a slot killed again within 10 s of being ready backs off:
    # on 2 CPUs that allows about one kill a second, each a full restart.
    assert kills >= 40, f"only {kills} kills: the soak did not soak"
    assert report["ok"] > 1000
    assert report["failed"] <= held_by_victims, f"{report} with {held_by_victims} connections on killed workers"
    assert report["timeout"] == 0 and report["connect"] == 0, report
    assert fds_after == fds_before, f"the arbiter's fds went from {fds_before} to {fds_after}"
    assert rss_after <= rss_before + RSS_SLACK_KIB, f"the arbiter's RSS went from {rss_before} to {rss_after} KiB"
