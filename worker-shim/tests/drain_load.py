"""Measure failed requests while one of two workers sharing a listener drains (SIGTERM).

    python tests/drain_load.py [--client wrk|httpx] [--http httptools|h11] [--seconds 5] [--connections 64]

Prints one line of figures; the pytest test (test_drain.py) asserts on the same function.
Traffic stays on 127.0.0.1; every loop is bounded in time and count.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness import Worker, tcp_listener, url_of


@dataclass
class DrainResult:
    requests: int
    failures: int
    drained_exit: int
    drain_seconds: float
    detail: str


def _wrk(url: str, seconds: float, connections: int) -> tuple[int, int, str]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", url],
        capture_output=True, text=True, timeout=seconds + 30,
    ).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    failures = 0
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket_errors:
        failures += sum(int(n) for n in socket_errors.groups())
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        failures += int(non_2xx.group(1))
    return total, failures, out


def _httpx(url: str, seconds: float, connections: int) -> tuple[int, int, str]:
    async def load() -> tuple[int, int, list[str]]:
        done = failed = 0
        errors: list[str] = []
        deadline = time.monotonic() + seconds
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:
            async def one_client() -> None:
                nonlocal done, failed
                for _ in range(1_000_000):
                    if time.monotonic() >= deadline:
                        return
                    try:
                        response = await client.get(url)
                        if response.status_code != 200:
                            raise RuntimeError(f"status {response.status_code}")
                    except Exception as exc:
                        failed += 1
                        errors.append(repr(exc))
                    done += 1
            await asyncio.gather(*(one_client() for _ in range(connections)))
        return done, failed, errors
    done, failed, errors = asyncio.run(load())
    return done, failed, "\n".join(errors[:10])


def measure_drain(client: str = "wrk", http: str = "httptools", seconds: float = 5.0, connections: int = 64,
                  stock_uvicorn: bool = False, loop: str = "auto") -> DrainResult:
    listener = tcp_listener()
    url = url_of(listener) + "/"
    args = ["--http", http, "--no-access-log", "--graceful-timeout", "10"]
    if not stock_uvicorn:
        args += ["--loop", loop]
    module = (str(Path(__file__).parent / "stock_uvicorn.py"),) if stock_uvicorn else ("-m", "arbiter_worker")
    workers = [Worker("shim_hello:app", [listener], args=args, module=module) for _ in range(2)]
    try:
        for worker in workers:
            worker.wait_for("ready")
        outcome: dict[str, tuple[int, int, str]] = {}
        runner = _wrk if client == "wrk" else _httpx
        load = threading.Thread(target=lambda: outcome.setdefault("load", runner(url, seconds, connections)))
        load.start()
        time.sleep(seconds / 3)  # let the load reach steady state on both workers (a benchmark, not a test wait)
        began = time.monotonic()
        workers[0].signal(signal.SIGTERM)
        code, _, err = workers[0].finish(timeout=30)
        drain_seconds = time.monotonic() - began
        load.join(timeout=seconds + 60)
        total, failures, detail = outcome["load"]
        return DrainResult(total, failures, code, drain_seconds, detail if failures else "")
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.signal(signal.SIGTERM)
                worker.finish(timeout=15)
        listener.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--client", default="wrk", choices=("wrk", "httpx"))
    parser.add_argument("--http", default="httptools", choices=("httptools", "h11"))
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--loop", default="auto", choices=("auto", "asyncio", "uvloop"))
    parser.add_argument("--stock-uvicorn", action="store_true", help="baseline: uvicorn's own shutdown")
    options = parser.parse_args()
    for _ in range(options.runs):
        result = measure_drain(options.client, options.http, options.seconds, options.connections,
                               options.stock_uvicorn, options.loop)
        print(f"{'stock-uvicorn' if options.stock_uvicorn else 'arbiter_worker'} client={options.client} http={options.http} loop={options.loop} requests={result.requests} failed={result.failures} "
              f"drained_exit={result.drained_exit} drain_seconds={result.drain_seconds:.2f}")
        if result.detail:
            print(result.detail, file=sys.stderr)


if __name__ == "__main__":
    main()
