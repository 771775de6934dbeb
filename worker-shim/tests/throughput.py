"""Throughput of one worker, the shim against stock uvicorn (same app, socket, loop, parser).

    python tests/throughput.py [--rounds 3] [--seconds 5]

Prints requests/s per round and the median difference. A benchmark: it never fails.
"""

from __future__ import annotations

import argparse
import re
import signal
import statistics
import subprocess
from pathlib import Path

from harness import PYTHON, Worker, tcp_listener, url_of


def requests_per_second(stock: bool, seconds: float, http: str) -> float:
    listener = tcp_listener()
    target = (str(Path(__file__).parent / "stock_uvicorn.py"),) if stock else ("-m", "arbiter_worker")
    # The worker on CPU 1 and wrk on CPU 0, so they do not steal each other's time slices.
    worker = Worker("shim_hello:app", [listener], args=["--http", http, "--no-access-log"],
                    python="taskset", module=("-c", "1", PYTHON, *target), heartbeat_interval=1.0)
    try:
        worker.wait_for("ready")
        out = subprocess.run(["taskset", "-c", "0", "wrk", "-t1", "-c32", f"-d{seconds:g}s", url_of(listener) + "/"],
                             capture_output=True, text=True, timeout=seconds + 30).stdout
        return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    finally:
        worker.signal(signal.SIGTERM)
        worker.finish()
        listener.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--http", default="httptools")
    options = parser.parse_args()
    shim: list[float] = []
    stock: list[float] = []
    for round_number in range(options.rounds):
        stock.append(requests_per_second(True, options.seconds, options.http))
        shim.append(requests_per_second(False, options.seconds, options.http))
        print(f"round {round_number + 1}: stock {stock[-1]:.0f} req/s, arbiter_worker {shim[-1]:.0f} req/s")
    difference = (statistics.median(shim) / statistics.median(stock) - 1) * 100
    print(f"median: stock {statistics.median(stock):.0f}, arbiter_worker {statistics.median(shim):.0f} ({difference:+.1f}%)")


if __name__ == "__main__":
    main()
