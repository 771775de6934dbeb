#!/usr/bin/python3
"""Bounded HTTP load for the end-to-end tests; stdlib only (runs with the container's python3).

    load.py --url http://127.0.0.1:9080/ [--unix PATH] -c 4 --interval 0.01 --duration 60 --stop-file F

C client threads each send GET requests one after another on a keep-alive connection, pausing
--interval seconds between requests (so the load is bounded: at most C/interval requests a second),
until --stop-file exists or --duration has passed (--ready-file is created at the first success). A request fails when it raises (connection
refused, reset, timeout) or its status is not 200; after a failure the thread reconnects. At the
end it prints one JSON object: totals, failures by reason, the time of the first and last failure
(seconds since the start), and how many responses carried each value of --count-header (e.g. which
node answered).
"""

import argparse
import http.client
import json
import os
import socket
import ssl
import threading
import time
from collections import Counter
from urllib.parse import urlsplit


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class Results:
    def __init__(self, header: str | None, ready_file: str | None) -> None:
        self.lock = threading.Lock()
        self.ready_file = ready_file
        self.ok = 0
        self.failures: Counter[str] = Counter()
        self.fail_times: list[float] = []
        self.header = header
        self.header_counts: Counter[str] = Counter()
        self.ok_since_failure = 0

    def success(self, header_value: str | None) -> None:
        with self.lock:
            self.ok += 1
            self.ok_since_failure += 1
            if self.ok == 1 and self.ready_file:
                open(self.ready_file, "w").close()
            if self.header:
                self.header_counts[header_value or "-"] += 1

    def failure(self, reason: str, at: float) -> None:
        with self.lock:
            self.failures[reason] += 1
            self.fail_times.append(at)
            self.ok_since_failure = 0

    def write_progress(self, path: str, elapsed: float) -> None:
        """The figures so far, for run.sh to wait on (written whole, then renamed into place)."""
        with self.lock:
            figures = {"ok": self.ok, "failed": sum(self.failures.values()),
                       "ok_since_failure": self.ok_since_failure, "elapsed_s": round(elapsed, 3)}
        with open(path + ".tmp", "w") as out:
            json.dump(figures, out)
        os.replace(path + ".tmp", path)


def client(args: argparse.Namespace, results: Results, start: float, stop: threading.Event) -> None:
    url = urlsplit(args.url)
    path = url.path or "/"
    if url.query:
        path += "?" + url.query

    def connect() -> http.client.HTTPConnection:
        if args.unix:
            return UnixHTTPConnection(args.unix, args.timeout)
        if url.scheme == "https":
            return http.client.HTTPSConnection(url.hostname, url.port or 443, timeout=args.timeout,
                                               context=ssl._create_unverified_context())
        return http.client.HTTPConnection(url.hostname, url.port or 80, timeout=args.timeout)

    conn = connect()
    while not stop.is_set():
        try:
            conn.request("GET", path, headers={"Host": args.host})
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                results.success(response.getheader(args.count_header) if args.count_header else None)
            else:
                results.failure(f"status {response.status}", time.monotonic() - start)
            if response.will_close:
                conn.close()
                conn = connect()
        except (OSError, http.client.HTTPException) as error:
            results.failure(type(error).__name__, time.monotonic() - start)
            conn.close()
            conn = connect()
        stop.wait(args.interval)
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--unix")
    parser.add_argument("--host", default="app.example.com")
    parser.add_argument("-c", "--concurrency", type=int, default=4)
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--stop-file")
    parser.add_argument("--count-header")
    parser.add_argument("--ready-file", help="created after the first successful response")
    parser.add_argument("--progress-file", help="kept up to date with the figures so far (JSON)")
    args = parser.parse_args()

    results = Results(args.count_header, args.ready_file)
    stop = threading.Event()
    start = time.monotonic()
    threads = [threading.Thread(target=client, args=(args, results, start, stop), daemon=True)
               for _ in range(args.concurrency)]
    for thread in threads:
        thread.start()
    deadline = start + args.duration
    while time.monotonic() < deadline and not (args.stop_file and os.path.exists(args.stop_file)):
        if args.progress_file:
            results.write_progress(args.progress_file, time.monotonic() - start)
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join(args.timeout + 1)
    elapsed = time.monotonic() - start
    failed = sum(results.failures.values())
    print(json.dumps({
        "requests": results.ok + failed,
        "ok": results.ok,
        "failed": failed,
        "failures": dict(results.failures),
        "first_failure_s": round(min(results.fail_times), 3) if results.fail_times else None,
        "last_failure_s": round(max(results.fail_times), 3) if results.fail_times else None,
        "elapsed_s": round(elapsed, 3),
        "by_header": dict(results.header_counts),
    }))


if __name__ == "__main__":
    main()
