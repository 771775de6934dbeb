#!/usr/bin/env python3
"""arbiter benchmark harness: the same app under arbiter and the servers users would otherwise run.

Run through tests/bench/run.sh (it builds the tools and the venv). This script only measures and
writes raw JSON; report.py turns that JSON into docs/benchmarks/results.md and chart.png.

Every figure is printed, nothing is asserted: benchmarks never fail on a timing. Every load is
bounded in count and time, on 127.0.0.1 only, and every process this script starts is stopped by
its own pid / process group (each server runs in a new session).
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import http.client
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
APPS = HERE / "apps"

# ---------------------------------------------------------------------------------------- helpers


def log(*args) -> None:
    print(time.strftime("%H:%M:%S"), *args, flush=True)


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) of an unsorted list."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    out.extend(int(x) for x in f.read().split())
            except OSError:
                pass
    except OSError:
        pass
    return out


def descendants(pid: int) -> list[int]:
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children(p):
            if c not in seen:
                seen.append(c)
                todo.append(c)
    return seen


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def proc_status(pid: int) -> dict[str, str]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k] = v.strip()
    except OSError:
        pass
    return out


def kib(value: str | None) -> int | None:
    if not value:
        return None
    return int(value.split()[0])


def ctx_switches(pid: int) -> tuple[int, int, int]:
    """(voluntary, nonvoluntary, threads) summed over every thread of the process."""
    vol = nvol = n = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0, 0, 0
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches"):
                        nvol += int(line.split()[1])
            n += 1
        except OSError:
            pass
    return vol, nvol, n


def pss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def http_get(port: int, path: str = "/", timeout: float = 2.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def port_free(port: int) -> bool:
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


# --------------------------------------------------------------------------------------- clients


WRK_ERR = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def parse_wrk(out: str) -> dict:
    res = {"raw": out[-1500:]}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if m:
        res["requests"] = int(m.group(1))
        val, unit = float(m.group(2)), m.group(3)
        res["seconds"] = val * {"s": 1, "ms": 1e-3, "us": 1e-6, "m": 60}.get(unit, 1)
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else None
    m = WRK_ERR.search(out)
    errs = [int(x) for x in m.groups()] if m else [0, 0, 0, 0]
    res["errors"] = dict(zip(["connect", "read", "write", "timeout"], errs))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    res["failed"] = sum(errs) + res["non2xx"]
    return res


def wrk_args(url: str, conns: int, duration: float, close: bool, threads: int = 1) -> list[str]:
    args = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{max(1, int(round(duration)))}s", "--timeout", "5s"]
    if close:
        args += ["-H", "Connection: close"]
    return args + [url]



# Load windows of the failure scenarios (seconds of load before the first step, after each step,
# and after the last one).
LOAD_BEFORE_S = 1.5
LOAD_BETWEEN_S = 1.0
LOAD_AFTER_S = 1.0


def wait_cpu_quiet(timeout: float = 20.0, idle_share: float = 0.8) -> bool:
    """Wait until the machine's CPUs were at least `idle_share` idle over the last 0.5 s (after a
    mass boot, before timing): a condition with a deadline, not a fixed settle time."""
    def idle_total() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return fields[3] + fields[4], sum(fields)

    deadline = time.monotonic() + timeout
    before = idle_total()
    while time.monotonic() < deadline:
        time.sleep(0.5)  # the sampling window of the measurement itself
        after = idle_total()
        idle, total = after[0] - before[0], after[1] - before[1]
        if total and idle / total >= idle_share:
            return True
        before = after
    return False

def run_wrk(url: str, conns: int, duration: float, close: bool = False) -> dict:
    p = subprocess.run(wrk_args(url, conns, duration, close), capture_output=True, text=True,
                       timeout=duration + 30)
    return parse_wrk(p.stdout + p.stderr)


LOADS: list[subprocess.Popen] = []  # background load generators, stopped by pid on exit


class WrkUntilStopped:
    """wrk with a long -d, stopped by SIGINT when the scenario is done (wrk then prints its totals)."""

    def __init__(self, url: str, conns: int, close: bool = False, limit: float = 180):
        self.p = subprocess.Popen(wrk_args(url, conns, limit, close), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        LOADS.append(self.p)
        self.t0 = time.monotonic()

    def stop(self) -> dict:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
        try:
            out, _ = self.p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, _ = self.p.communicate()
        res = parse_wrk(out)
        res["wall_s"] = time.monotonic() - self.t0
        return res


def run_vegeta(vegeta: str, url: str, rate: int, duration: float, workdir: Path) -> dict:
    """Open loop: requests are sent on a fixed schedule whether or not earlier ones were answered,
    so a stalled server shows up in the latencies instead of slowing the client (no coordinated
    omission). Latency percentiles are computed here from every result."""
    out = workdir / "vegeta.bin"
    with open(out, "wb") as f:
        subprocess.run([vegeta, "attack", f"-rate={rate}/s", f"-duration={duration}s", "-timeout=5s",
                        "-keepalive=true", "-http2=false", "-max-body=0"],
                       input=f"GET {url}\n".encode(), stdout=f, timeout=duration + 30, check=True)
    enc = subprocess.run([vegeta, "encode", "-to", "csv", str(out)], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    lat_ok, ts, failed, total = [], [], 0, 0
    for row in csv.reader(io.StringIO(enc)):
        if len(row) < 6:
            continue
        total += 1
        t, code, lat = int(row[0]), int(row[1]), int(row[2])
        ts.append(t)
        if 200 <= code < 300 and not row[5]:
            lat_ok.append(lat / 1e6)
        else:
            failed += 1
    span = (max(ts) - min(ts)) / 1e9 if len(ts) > 1 else 0
    return {
        "rate": rate, "requests": total, "failed": failed,
        "sent_rate": (total - 1) / span if span else None,
        "p50_ms": percentile(lat_ok, 50), "p99_ms": percentile(lat_ok, 99),
        "p999_ms": percentile(lat_ok, 99.9), "max_ms": max(lat_ok) if lat_ok else None,
        "mean_ms": statistics.fmean(lat_ok) if lat_ok else None,
    }


# --------------------------------------------------------------------------------------- servers


class Server:
    """How to start one server kind and how to ask it to reload, scale, and report its workers."""

    key = ""
    label = ""
    reload_how = "n/a"
    scale_how = "n/a"
    maxreq_how = "n/a"

    def __init__(self, h: "Harness"):
        self.h = h

    def argv(self, workers: int, port: int, inst: "Instance", extra: dict) -> list[str]:
        raise NotImplementedError

    # default: signals to the master; overridden by arbiter
    abort_marker = None  # a log line that says the server gave up the reload

    def reload(self, inst: "Instance") -> dict:
        old = set(inst.workers())
        log_path = inst.dir / "server.log"
        log_start = log_path.stat().st_size
        aborted = False

        def done():
            nonlocal aborted
            if self.abort_marker:
                with open(log_path, errors="replace") as f:
                    f.seek(log_start)
                    if self.abort_marker in f.read():
                        aborted = True
                        return True
            w = inst.workers()
            return len(w) >= inst.target and not (set(w) & old) and not any(alive(p) for p in old)

        t0 = time.monotonic()
        os.kill(inst.pid, signal.SIGHUP)
        ok = inst.wait_until(done, 60, 0.02)
        return {"ok": ok and not aborted, "aborted": aborted, "seconds": time.monotonic() - t0}

    def scale(self, inst: "Instance", n: int) -> dict:
        if self.scale_how == "n/a":
            return {"ok": False, "seconds": None}
        delta = n - inst.target
        sig = signal.SIGTTIN if delta > 0 else signal.SIGTTOU
        t0 = time.monotonic()
        for _ in range(abs(delta)):
            os.kill(inst.pid, sig)
            time.sleep(0.05)
        inst.target = n
        ok = inst.wait_until(lambda: len(inst.workers()) == n, 90)
        return {"ok": ok, "seconds": time.monotonic() - t0}

    def maxreq_args(self, n: int, jitter: int) -> list[str] | None:
        return None


class Arbiter(Server):
    reload_how = "`arbiter ctl reload`"
    scale_how = "`arbiter ctl scale N`"
    maxreq_how = "`--max-requests 200 --max-requests-jitter 50`"

    def __init__(self, h, reuse_port: bool):
        super().__init__(h)
        self.reuse_port = reuse_port
        self.key = "arbiter-reuseport" if reuse_port else "arbiter"
        self.label = "arbiter --reuse-port" if reuse_port else "arbiter (shared socket)"

    def argv(self, workers, port, inst, extra):
        a = [str(self.h.arbiter), "run", "-w", str(workers), "-b", f"127.0.0.1:{port}",
             "--python", str(self.h.python), "--chdir", str(extra.get("appdir", APPS)),
             "--no-access-log", "--loop", "uvloop", "--http", "httptools",
             "--control", str(inst.ctl_path), "--log-level", "warning"]
        if self.reuse_port:
            a.append("--reuse-port")
        if extra.get("maxreq"):
            n, j = extra["maxreq"]
            a += ["--max-requests", str(n), "--max-requests-jitter", str(j)]
        if extra.get("metrics_port"):
            a += ["--metrics", f"127.0.0.1:{extra['metrics_port']}"]
        if extra.get("boot_timeout"):
            a += ["--boot-timeout", str(extra["boot_timeout"])]
        return a + [extra.get("app", "bench_app:app")]

    def ctl(self, inst, *args, timeout=180) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.h.arbiter), "ctl", "--control", str(inst.ctl_path), *args],
                              capture_output=True, text=True, timeout=timeout)

    def reload(self, inst):
        t0 = time.monotonic()
        p = self.ctl(inst, "reload")
        return {"ok": p.returncode == 0, "seconds": time.monotonic() - t0, "out": p.stdout[-300:] + p.stderr[-300:]}

    def scale(self, inst, n):
        t0 = time.monotonic()
        p = self.ctl(inst, "scale", str(n))
        inst.target = n
        return {"ok": p.returncode == 0, "seconds": time.monotonic() - t0}

    def maxreq_args(self, n, jitter):
        return ["--max-requests", str(n), "--max-requests-jitter", str(jitter)]


class GunicornUvicorn(Server):
    key = "gunicorn-uvicorn"
    label = "gunicorn + UvicornWorker"
    reload_how = "SIGHUP"
    scale_how = "SIGTTIN / SIGTTOU"
    maxreq_how = "`--max-requests 200 --max-requests-jitter 50`"
    worker_class = "uvicorn_worker.UvicornWorker"

    def argv(self, workers, port, inst, extra):
        a = [str(self.h.venv / "bin" / "gunicorn"), "-w", str(workers), "-k", self.worker_class,
             "-b", f"127.0.0.1:{port}", "--chdir", str(extra.get("appdir", APPS)),
             "--control-socket", str(inst.ctl_path), "--log-level", "warning", "--graceful-timeout", "30"]
        a += self.worker_extra()
        if extra.get("maxreq"):
            n, j = extra["maxreq"]
            a += ["--max-requests", str(n), "--max-requests-jitter", str(j)]
        return a + [extra.get("app", "bench_app:app")]

    def worker_extra(self):
        return []


class GunicornASGI(GunicornUvicorn):
    key = "gunicorn-asgi"
    label = "gunicorn -k asgi (native)"
    worker_class = "asgi"

    def worker_extra(self):
        return ["--asgi-loop", "uvloop"]


class Uvicorn(Server):
    key = "uvicorn"
    label = "uvicorn --workers"
    reload_how = "SIGHUP"
    scale_how = "SIGTTIN / SIGTTOU"
    maxreq_how = "`--limit-max-requests 200 --limit-max-requests-jitter 50`"
    abort_marker = "aborting the restart"

    def argv(self, workers, port, inst, extra):
        a = [str(self.h.venv / "bin" / "uvicorn"), "--workers", str(workers), "--host", "127.0.0.1",
             "--port", str(port), "--app-dir", str(extra.get("appdir", APPS)), "--no-access-log",
             "--loop", "uvloop", "--http", "httptools", "--log-level", "warning"]
        if extra.get("maxreq"):
            n, j = extra["maxreq"]
            a += ["--limit-max-requests", str(n), "--limit-max-requests-jitter", str(j)]
        return a + [extra.get("app", "bench_app:app")]


class Granian(Server):
    key = "granian"
    label = "granian (own protocol stack)"
    reload_how = "SIGHUP"

    def argv(self, workers, port, inst, extra):
        return [str(self.h.venv / "bin" / "granian"), "--interface", "asgi", "--workers", str(workers),
                "--host", "127.0.0.1", "--port", str(port), "--working-dir", str(extra.get("appdir", APPS)),
                "--loop", "uvloop", "--no-access-log", "--log-level", "warning",
                "--respawn-failed-workers", extra.get("app", "bench_app:app")]


class Instance:
    """One running server: its process group, its ready markers, its worker pids."""

    def __init__(self, h: "Harness", server: Server, workers: int, extra: dict | None = None):
        self.h, self.server, self.target = h, server, workers
        self.extra = extra or {}
        self.dir = Path(tempfile.mkdtemp(prefix=f"{server.key}-", dir=h.tmp))
        self.ready_dir = self.dir / "ready"
        self.ready_dir.mkdir()
        self.count_dir = self.dir / "count"
        self.count_dir.mkdir()
        self.ctl_path = self.dir / "ctl.sock"
        self.port = free_port()
        env = dict(os.environ, BENCH_READY_DIR=str(self.ready_dir), PYTHONDONTWRITEBYTECODE="1")
        env.pop("VIRTUAL_ENV", None)
        if self.extra.get("count"):
            env["BENCH_COUNT_DIR"] = str(self.count_dir)
        argv = server.argv(workers, self.port, self, self.extra)
        self.argv = argv
        self.logf = open(self.dir / "server.log", "w")
        self.t_start = time.time()
        self.popen = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT, env=env,
                                      cwd=str(self.extra.get("appdir", APPS)), start_new_session=True)
        self.pid = self.popen.pid
        self.start_ready_s: float | None = None
        self.start_ctl_ready_s: float | None = None

    # -- workers
    def markers(self) -> dict[int, float]:
        out = {}
        for name in os.listdir(self.ready_dir):
            if name.isdigit():
                try:
                    out[int(name)] = float((self.ready_dir / name).read_text())
                except (OSError, ValueError):
                    pass
        return out

    def workers(self) -> list[int]:
        """Pids of live processes of this server that finished lifespan startup."""
        marks = self.markers()
        procs = set(descendants(self.pid)) | {self.pid}
        return [p for p in marks if p in procs and alive(p)]

    def ctl_status(self) -> dict | None:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(5)
            s.connect(str(self.ctl_path))
            s.sendall(b'{"cmd":"status"}\n')
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            s.close()
            return json.loads(buf)
        except (OSError, ValueError):
            return None

    def wait_until(self, pred, timeout: float, interval: float = 0.005) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                return False
            if pred():
                return True
            time.sleep(interval)
        return False

    def wait_ready(self, timeout: float = 90) -> bool:
        is_arb = isinstance(self.server, Arbiter)

        def ready():
            if is_arb and self.start_ctl_ready_s is None:
                st = self.ctl_status()
                if st and st.get("ready_workers") == self.target:
                    self.start_ctl_ready_s = time.time() - self.t_start
            if len(self.workers()) < self.target:
                return False
            return not is_arb or self.start_ctl_ready_s is not None

        if not self.wait_until(ready, timeout, 0.01):
            log(f"  ! {self.server.key}: not ready in {timeout}s; log tail:\n"
                + (self.dir / "server.log").read_text()[-2000:])
            return False
        marks = self.markers()
        times = sorted(marks[p] for p in self.workers())[: self.target]
        self.start_ready_s = max(times) - self.t_start
        # and it answers
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if http_get(self.port)[0] == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    def url(self, path="/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        if self.popen.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        # whatever of our own process group is left (workers of a master that died first)
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.logf.close()
        deadline = time.monotonic() + 5
        while not port_free(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)


# --------------------------------------------------------------------------------------- harness


class Harness:
    def __init__(self, args):
        self.args = args
        self.smoke = args.smoke
        self.venv = Path(args.venv).resolve()
        self.python = self.venv / "bin" / "python"
        self.arbiter = Path(args.arbiter).resolve()
        self.vegeta = args.vegeta
        self.out = Path(args.out).resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix="arbiter-bench-"))
        all_servers = [Arbiter(self, False), Arbiter(self, True), GunicornUvicorn(self), GunicornASGI(self),
                       Uvicorn(self), Granian(self)]
        if not self.has_gunicorn_asgi():
            all_servers = [s for s in all_servers if s.key != "gunicorn-asgi"]
        if args.servers:
            keep = args.servers.split(",")
            all_servers = [s for s in all_servers if s.key in keep]
        self.servers = all_servers
        self.results: dict = {"meta": self.meta(), "config": {}, "throughput": [], "latency": [],
                              "start": [], "fairness": [], "failures": [], "kill": [], "scale_up": [],
                              "footprint": [], "ctl": {}, "metrics": {}, "rates": {}}
        self.instances: list[Instance] = []
        if self.smoke:
            c = dict(rounds=1, widths=[1], endpoints=["/"], tput_s=1, warm_s=1, lat_s=1, conns=64,
                     kills=1, scaleups=1, ops_workers=2, idle_s=2, ctl_calls=200, ctl_cli_calls=20,
                     metrics_workers=8, metrics_gets=50, fair_s=1, maxreq_s=3, rate_fraction=0.5)
        else:
            c = dict(rounds=3, widths=[1, 2], endpoints=["/", "/sleep"], tput_s=3, warm_s=1, lat_s=4,
                     conns=64, kills=10, scaleups=5, ops_workers=4, idle_s=10, ctl_calls=1000,
                     ctl_cli_calls=200, metrics_workers=64, metrics_gets=200, fair_s=3, maxreq_s=10,
                     rate_fraction=0.5)
        if args.rounds:
            c["rounds"] = args.rounds
        self.c = c
        # smoke: every server in the speed test, the operational scenarios on arbiter only
        self.ops_servers = [s for s in self.servers if s.key == "arbiter"] if self.smoke else self.servers
        self.results["config"] = dict(c, servers=[s.key for s in self.servers])

    def has_gunicorn_asgi(self) -> bool:
        p = subprocess.run([str(self.python), "-c", "import gunicorn.workers.gasgi"], capture_output=True)
        return p.returncode == 0

    def meta(self) -> dict:
        def ver(mod):
            p = subprocess.run([str(self.python), "-c", f"import importlib.metadata as m; print(m.version('{mod}'))"],
                               capture_output=True, text=True)
            return p.stdout.strip() or None

        cpu = ""
        try:
            for line in open("/proc/cpuinfo"):
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        arb = subprocess.run([str(self.arbiter), "--version"], capture_output=True, text=True).stdout.strip()
        wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
        veg = subprocess.run([self.vegeta, "-version"], capture_output=True, text=True).stdout.strip()
        os_release = ""
        try:
            os_release = re.search(r'PRETTY_NAME="(.*)"', open("/etc/os-release").read()).group(1)
        except (OSError, AttributeError):
            pass
        return {
            "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "cpu": cpu, "cpus": os.cpu_count(), "kernel": platform.release(), "os": os_release,
            "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "python": subprocess.run([str(self.python), "-V"], capture_output=True, text=True).stdout.strip(),
            "arbiter": arb,
            "versions": {m: ver(m) for m in ["gunicorn", "uvicorn", "uvicorn-worker", "granian", "fastapi",
                                            "starlette", "uvloop", "httptools", "gunicorn_h1c"]},
            "wrk": " ".join((wrk.stdout + wrk.stderr).split()[:2]) or "wrk",
            "vegeta": os.environ.get("BENCH_VEGETA_VERSION") or (veg.splitlines()[0] if veg else "?"),
            "command": os.environ.get("BENCH_COMMAND", "tests/bench/run.sh"),
            "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
            "tcp_migrate_req": open("/proc/sys/net/ipv4/tcp_migrate_req").read().strip()
            if os.path.exists("/proc/sys/net/ipv4/tcp_migrate_req") else None,
        }

    # ---- lifecycle
    def start(self, server: Server, workers: int, **extra) -> Instance | None:
        inst = Instance(self, server, workers, extra)
        self.instances.append(inst)
        if not inst.wait_ready(extra.get("boot_wait", 90)):
            self.stop(inst)
            return None
        self.results["start"].append({"server": server.key, "workers": workers, "app": extra.get("app", "bench_app:app"),
                                      "maxreq": bool(extra.get("maxreq")), "count": bool(extra.get("count")),
                                      "ready_s": inst.start_ready_s, "ctl_ready_s": inst.start_ctl_ready_s})
        return inst

    def stop(self, inst: Instance) -> None:
        inst.stop()
        if inst in self.instances:
            self.instances.remove(inst)

    def cleanup(self) -> None:
        for p in LOADS:
            if p.poll() is None:
                p.kill()
                p.wait()
        for inst in list(self.instances):
            self.stop(inst)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def order(self, rnd: int) -> list[Server]:
        """Rotate the server order every round so no server always runs first (or last)."""
        k = rnd % len(self.servers)
        return self.servers[k:] + self.servers[:k]

    def save(self) -> None:
        name = f"raw-{self.args.tag}.json" if self.args.tag else "raw-smoke.json" if self.smoke else "raw.json"
        (self.out / name).write_text(json.dumps(self.results, indent=1))

    # ---- 1. throughput and latency
    def scenario_speed(self) -> None:
        c = self.c
        if self.smoke:
            # one round, throughput and latency from the same start, at a fixed rate per worker
            plan = [(0, True, True)]
            for w in c["widths"]:
                for ep in c["endpoints"]:
                    self.results["rates"][f"{ep}|{w}"] = (self.args.rate or 300) * w
        else:
            # round 0 measures throughput only and fixes the open-loop rates; rounds 1..N-1 measure
            # both; round N latency only: N rounds of each, every server restarted for every round
            n = c["rounds"]
            plan = [(r, r < n, r >= 1) for r in range(n + 1)]
        for rnd, do_tput, do_lat in plan:
            if do_lat and not self.results["rates"]:
                self.fix_rates()
            for w in c["widths"]:
                for srv in self.order(rnd):
                    log(f"round {rnd} W={w} {srv.key}")
                    inst = self.start(srv, w)
                    if inst is None:
                        continue
                    for ep in c["endpoints"]:
                        run_wrk(inst.url(ep), c["conns"], c["warm_s"])
                        if do_tput:
                            r = run_wrk(inst.url(ep), c["conns"], c["tput_s"])
                            self.results["throughput"].append(
                                {"server": srv.key, "workers": w, "endpoint": ep, "round": rnd,
                                 "rps": r["rps"], "failed": r["failed"], "requests": r.get("requests")})
                            log(f"   wrk {ep}: {r['rps']} req/s, failed {r['failed']}")
                        if do_lat:
                            rate = self.results["rates"].get(f"{ep}|{w}")
                            if rate:
                                v = run_vegeta(self.vegeta, inst.url(ep), rate, c["lat_s"], inst.dir)
                                v.update({"server": srv.key, "workers": w, "endpoint": ep, "round": rnd})
                                self.results["latency"].append(v)
                                log(f"   vegeta {ep} @{rate}/s: p50 {v['p50_ms']:.2f} p99 {v['p99_ms']:.2f} "
                                    f"p99.9 {v['p999_ms']:.2f} ms, failed {v['failed']}, sent {v['sent_rate']:.0f}/s")
                    self.stop(inst)
                self.save()

    def fix_rates(self) -> None:
        """The open-loop rate: a fixed fraction of the slowest server's closed-loop throughput (round 0),
        the same rate for every server, so every server is below saturation."""
        for w in self.c["widths"]:
            for ep in self.c["endpoints"]:
                vals = [t["rps"] for t in self.results["throughput"]
                        if t["workers"] == w and t["endpoint"] == ep and t["rps"]]
                if self.args.rate:
                    rate = self.args.rate * w
                elif vals:
                    rate = max(50, int(min(vals) * self.c["rate_fraction"] // 50 * 50))
                else:
                    rate = 500 * w
                self.results["rates"][f"{ep}|{w}"] = rate
                log(f"open-loop rate for {ep} W={w}: {rate}/s")

    # ---- 2. fairness
    def scenario_fairness(self) -> None:
        c = self.c
        for srv in self.ops_servers:
            for close in ((False,) if self.smoke else (False, True)):
                inst = self.start(srv, c["ops_workers"], count=True)
                if inst is None:
                    continue
                workers = inst.workers()
                before = self.counts(inst)
                r = run_wrk(inst.url("/"), c["conns"], c["fair_s"], close=close)
                # The count files are written every 0.5 s, arbiter's counts come with heartbeats (5 s):
                # wait until both have caught up with every request wrk completed.
                served = r.get("requests", 0)

                def caught_up() -> bool:
                    now = self.counts(inst)
                    files = sum(now["files"].values()) - sum(before["files"].values())
                    ctl = sum(now.get("ctl", {}).values()) - sum(before.get("ctl", {}).values())
                    return files >= served and (not isinstance(srv, Arbiter) or ctl >= served)

                if not inst.wait_until(caught_up, 15, interval=0.1):
                    log(f"  ! fairness {srv.key}: the per-worker counts did not reach {served} within 15 s")
                after = self.counts(inst)
                per = {p: after["files"].get(p, 0) - before["files"].get(p, 0) for p in workers}
                ctl_per = None
                if after.get("ctl"):
                    ctl_per = {p: after["ctl"].get(p, 0) - before["ctl"].get(p, 0) for p in after["ctl"]}
                vals = sorted(per.values())
                total = sum(vals)
                rec = {"server": srv.key, "workers": inst.target, "close": close, "per_worker": vals,
                       "ctl_per_worker": sorted(ctl_per.values()) if ctl_per else None, "total": total,
                       "rps": r["rps"], "failed": r["failed"],
                       "max_over_mean": (max(vals) / (total / len(vals))) if total else None,
                       "min_over_mean": (min(vals) / (total / len(vals))) if total else None}
                self.results["fairness"].append(rec)
                log(f"fairness {srv.key} {'close' if close else 'keep-alive'}: {vals} ctl={rec['ctl_per_worker']}")
                self.stop(inst)
        self.save()

    def counts(self, inst: Instance) -> dict:
        files = {}
        for name in os.listdir(inst.count_dir):
            if name.isdigit():
                try:
                    files[int(name)] = int((inst.count_dir / name).read_text() or 0)
                except (OSError, ValueError):
                    pass
        out = {"files": files}
        if isinstance(inst.server, Arbiter):
            st = inst.ctl_status() or {}
            out["ctl"] = {w["pid"]: w.get("requests", 0) for w in st.get("workers", [])}
        return out

    # ---- 3. failures under load
    def scenario_failures(self) -> None:
        c = self.c
        W = c["ops_workers"]
        kinds = [("reload", False), ("scale_down", False), ("max_requests", False)]
        if self.args.with_close:
            kinds.insert(1, ("reload", True))
        if self.smoke:
            kinds = [("reload", False), ("scale_down", False)]
        for kind, close in kinds:
            for srv in self.ops_servers:
                rec = {"server": srv.key, "kind": kind, "close": close, "workers": W}
                if kind == "reload" and srv.reload_how == "n/a" or kind == "scale_down" and srv.scale_how == "n/a" \
                        or kind == "max_requests" and srv.maxreq_how == "n/a":
                    rec["na"] = True
                    self.results["failures"].append(rec)
                    continue
                extra = {"maxreq": (200, 50)} if kind == "max_requests" else {}
                inst = self.start(srv, 2 if kind == "max_requests" else W, **extra)
                if inst is None:
                    rec["error"] = "did not start"
                    self.results["failures"].append(rec)
                    continue
                born_before = set(inst.markers())
                load = WrkUntilStopped(inst.url("/"), c["conns"], close=close)
                # The load windows around each step are part of the measurement: failures are
                # counted over load before, during and after every change.
                time.sleep(LOAD_BEFORE_S)
                steps = []
                if kind == "reload":
                    for _ in range(1 if self.smoke else 3):
                        steps.append(srv.reload(inst))
                        time.sleep(LOAD_BETWEEN_S)
                elif kind == "scale_down":
                    steps.append(srv.scale(inst, 1))
                    time.sleep(LOAD_BETWEEN_S)
                else:
                    time.sleep(c["maxreq_s"])
                time.sleep(LOAD_AFTER_S)
                res = load.stop()
                recycled = len(set(inst.markers()) - born_before)
                rec.update({"requests": res.get("requests"), "failed": res["failed"], "errors": res["errors"],
                            "non2xx": res["non2xx"], "rps": res["rps"], "steps": steps, "new_workers": recycled,
                            "load_s": res["wall_s"],
                            "log_tail": (inst.dir / "server.log").read_text(errors="replace")[-1200:]})
                log(f"{kind}{' close' if close else ''} {srv.key}: failed {res['failed']}/{res.get('requests')} "
                    f"{res['errors']} non2xx {res['non2xx']}, new workers {recycled}, "
                    f"steps {[round(s['seconds'], 2) if s.get('seconds') else None for s in steps]}")
                self.results["failures"].append(rec)
                self.stop(inst)
                self.save()

    # ---- 4 + 5. kill -> ready, scale 2 -> 8, footprint
    def scenario_lifecycle(self) -> None:
        c = self.c
        W = c["ops_workers"]
        for srv in self.ops_servers:
            log(f"footprint + kills {srv.key}")
            inst = self.start(srv, W)
            if inst is None:
                continue
            run_wrk(inst.url("/"), c["conns"], 1)
            wait_cpu_quiet()  # idle figures are measured on an idle machine
            self.footprint(srv, inst)
            self.kills(srv, inst)
            self.stop(inst)
            self.save()
        for srv in self.ops_servers:
            if srv.scale_how == "n/a":
                self.results["scale_up"].append({"server": srv.key, "na": True})
                continue
            inst = self.start(srv, 2)
            if inst is None:
                continue
            times, app_times = [], []
            for i in range(c["scaleups"]):
                t0 = time.time()
                r = srv.scale(inst, 8)
                ok = inst.wait_until(lambda: len(inst.workers()) >= 8, 90)
                t1 = time.time()
                marks = inst.markers()
                new = [marks[p] for p in inst.workers() if marks.get(p, 0) >= t0]
                times.append((t1 - t0) * 1000 if ok and r["ok"] else None)
                app_times.append((max(new) - t0) * 1000 if ok and new else None)
                log(f"scale 2->8 {srv.key}: {times[-1]} ms (last new worker ready at {app_times[-1]} ms)")
                srv.scale(inst, 2)
                inst.wait_until(lambda: len(inst.workers()) == 2, 60)
                wait_cpu_quiet()  # the next round starts from a quiet machine
            self.results["scale_up"].append({"server": srv.key, "ms": times, "app_ready_ms": app_times})
            self.stop(inst)
            self.save()

    def footprint(self, srv: Server, inst: Instance) -> None:
        st = proc_status(inst.pid)
        v0, n0, threads = ctx_switches(inst.pid)
        t0 = time.monotonic()
        time.sleep(self.c["idle_s"])
        v1, n1, _ = ctx_switches(inst.pid)
        dt = time.monotonic() - t0
        workers = inst.workers()
        wpss = [pss_kib(p) for p in workers]
        wrss = [kib(proc_status(p).get("VmRSS")) for p in workers]
        others = [p for p in descendants(inst.pid) if p not in workers]
        rec = {"server": srv.key, "workers": len(workers),
               "master_rss_kib": kib(st.get("VmRSS")), "master_pss_kib": pss_kib(inst.pid),
               "master_threads": threads, "wakeups_per_s": (v1 - v0) / dt,
               "all_switches_per_s": (v1 - v0 + n1 - n0) / dt,
               "worker_pss_kib": med(wpss), "worker_rss_kib": med(wrss),
               "helper_processes": len(others),
               "helper_pss_kib": sum(pss_kib(p) or 0 for p in others),
               "total_pss_kib": (pss_kib(inst.pid) or 0) + sum(x or 0 for x in wpss)
               + sum(pss_kib(p) or 0 for p in others)}
        self.results["footprint"].append(rec)
        log(f"footprint {srv.key}: master RSS {rec['master_rss_kib']} KiB, {rec['wakeups_per_s']:.2f} wakeups/s, "
            f"worker PSS {rec['worker_pss_kib']} KiB, helpers {len(others)}")

    def kills(self, srv: Server, inst: Instance) -> None:
        is_arb = isinstance(srv, Arbiter)
        app_ms, ctl_ms = [], []
        for i in range(self.c["kills"]):
            # Kill the longest-ready worker, and only once it has been ready for 10.5 s: arbiter
            # restarts a slot's first crash at once but backs off on repeated crashes of a slot that
            # was not healthy for 10 s (granian exits on two crashes of a slot within 5.5 s). The
            # figure wanted is the replacement time, not the crash-loop policy; same pacing for all.
            marks = inst.markers()
            workers = sorted(inst.workers(), key=lambda p: marks.get(p, 0))
            victim = workers[0]
            wait = marks.get(victim, 0) + 10.5 - time.time()
            if wait > 0:
                time.sleep(wait)
            slot = None
            if is_arb:
                st = inst.ctl_status() or {}
                slot = next((w["id"] for w in st.get("workers", []) if w["pid"] == victim), None)
            t0 = time.time()
            os.kill(victim, signal.SIGKILL)
            ctl_t = None

            def done():
                nonlocal ctl_t
                if is_arb and ctl_t is None:
                    st = inst.ctl_status() or {}
                    for w in st.get("workers", []):
                        if w["id"] == slot and w["pid"] != victim and w["state"] == "ready":
                            ctl_t = time.time()
                ws = [p for p in inst.workers() if p != victim]
                return len(ws) >= inst.target and (ctl_t is not None or not is_arb)

            ok = inst.wait_until(done, 30, 0.005)
            marks = inst.markers()
            new = [p for p in inst.workers() if marks.get(p, 0) >= t0]
            if ok and new:
                app_ms.append((marks[new[0]] - t0) * 1000)
                ctl_ms.append((ctl_t - t0) * 1000 if ctl_t else None)
            else:
                app_ms.append(None)
                ctl_ms.append(None)
                log(f"  ! kill {i} on {srv.key}: no replacement within 30 s")
            wait_cpu_quiet()  # each kill starts from a quiet machine
        rec = {"server": srv.key, "workers": inst.target, "app_ready_ms": app_ms, "ctl_ready_ms": ctl_ms if is_arb else None}
        self.results["kill"].append(rec)
        log(f"kill->ready {srv.key}: median {med(app_ms)} ms (app) {med(ctl_ms) if is_arb else ''}")

    # ---- 6. ctl status round trip
    def scenario_ctl(self) -> None:
        srv = next((s for s in self.servers if s.key == "arbiter"), None)
        if srv is None:
            return
        inst = self.start(srv, 8)
        if inst is None:
            return
        rt = []
        for _ in range(self.c["ctl_calls"]):
            t0 = time.perf_counter()
            st = inst.ctl_status()
            rt.append((time.perf_counter() - t0) * 1000)
            assert st and st.get("ok")
        cli = []
        for _ in range(self.c["ctl_cli_calls"]):
            t0 = time.perf_counter()
            srv.ctl(inst, "status", "--json")
            cli.append((time.perf_counter() - t0) * 1000)
        self.results["ctl"] = {"workers": 8, "calls": len(rt), "p50_ms": percentile(rt, 50),
                               "p99_ms": percentile(rt, 99), "max_ms": max(rt),
                               "cli_calls": len(cli), "cli_p50_ms": percentile(cli, 50),
                               "cli_p99_ms": percentile(cli, 99)}
        log(f"ctl status: {self.results['ctl']}")
        self.stop(inst)
        self.save()

    # ---- 7. /metrics with many workers
    def scenario_metrics(self) -> None:
        srv = next((s for s in self.servers if s.key == "arbiter"), None)
        if srv is None:
            return
        n = self.c["metrics_workers"]
        mport = free_port()
        inst = self.start(srv, n, app="tiny:app", metrics_port=mport, boot_timeout=180, boot_wait=240)
        if inst is None:
            self.results["metrics"] = {"workers": n, "error": "did not start"}
            return
        wait_cpu_quiet()  # 64 interpreters just booted
        times, size = [], 0
        for _ in range(self.c["metrics_gets"]):
            t0 = time.perf_counter()
            status, body = http_get(mport, "/metrics", timeout=10)
            times.append((time.perf_counter() - t0) * 1000)
            size = len(body)
        ht = []
        for _ in range(50):
            t0 = time.perf_counter()
            http_get(mport, "/healthz")
            ht.append((time.perf_counter() - t0) * 1000)
        st = proc_status(inst.pid)
        self.results["metrics"] = {"workers": n, "gets": len(times), "p50_ms": percentile(times, 50),
                                   "p99_ms": percentile(times, 99), "bytes": size,
                                   "healthz_p50_ms": percentile(ht, 50),
                                   "start_all_ready_s": inst.start_ready_s,
                                   "arbiter_rss_kib": kib(st.get("VmRSS"))}
        log(f"/metrics with {n} workers: {self.results['metrics']}")
        self.stop(inst)
        self.save()

    def run(self) -> None:
        wanted = self.args.only.split(",") if self.args.only else \
            ["speed", "fairness", "failures", "lifecycle", "ctl", "metrics"]
        t0 = time.monotonic()
        for name in wanted:
            ts = time.monotonic()
            log(f"=== {name}")
            getattr(self, f"scenario_{name}")()
            self.results.setdefault("durations_s", {})[name] = round(time.monotonic() - ts, 1)
        self.results["duration_s"] = round(time.monotonic() - t0, 1)
        self.results["meta"]["loadavg_at_end"] = open("/proc/loadavg").read().split()[:3]
        self.save()
        log(f"done in {self.results['duration_s']} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--venv", required=True)
    ap.add_argument("--arbiter", required=True)
    ap.add_argument("--vegeta", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--servers", help="comma-separated subset of server keys")
    ap.add_argument("--only", help="comma-separated subset of: speed,fairness,failures,lifecycle,ctl,metrics")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--tag", help="write raw-TAG.json (a supplementary run) instead of raw.json")
    ap.add_argument("--with-close", action="store_true", help="also 3 reloads under Connection: close load")
    ap.add_argument("--rate", type=int, help="open-loop rate per worker instead of the calibrated one")
    args = ap.parse_args()
    run_then_clean_up(Harness(args))


def run_then_clean_up(bench) -> None:
    """bench.run(), then bench.cleanup() however it ends: a SIGTERM (a CI timeout) included."""
    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        bench.run()
    finally:
        bench.cleanup()


if __name__ == "__main__":
    main()
