"""Fork server benchmark (issue: --preload): a big app at W=4, side by side in one run.

    tests/bench/run.sh preload [--rounds N]     (writes docs/benchmarks/preload.md and preload.json)

Servers: arbiter --preload, arbiter (exec), gunicorn --preload + UvicornWorker. The app's import builds
BIG_APP_MB (150) MiB of Python objects (tests/apps/big_app.py). Figures, each measured the same way
for every server, from outside, over loopback:
- start: from the server's exec until W distinct worker pids have answered HTTP requests;
- tree PSS: smaps_rollup Pss of the master and every descendant, after each worker answered /gc
  (a full gc.collect() in that worker: what breaks copy-on-write sharing in gunicorn's workers);
- kill: SIGKILL of one worker until a pid that did not exist before answers; median of 10;
- reload (arbiter only: gunicorn cannot load new code under --preload): `arbiter ctl reload` wall
  time, big app W=4 and hello app W=8, and failed requests counted by tests/integration/load.py
  (keep-alive) across 3 reloads under --preload.
Benchmarks never fail on a timing: they print figures.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ROOT / "tests" / "apps"
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from load import LoadRun  # noqa: E402

W = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_pid(port: int, path: str = "/", timeout: float = 2.0) -> int | None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except OSError:
        return None
    if not data.startswith(b"HTTP/1.1 200"):
        return None
    body = data.split(b"\r\n\r\n", 1)[1]
    try:
        return int(json.loads(body)["pid"])
    except (ValueError, KeyError):
        return None


def descendants(pid: int) -> set[int]:
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                raw = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents.setdefault(int(raw[raw.rindex(")") + 2 :].split()[1]), []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def start_ticks(pid: int) -> int:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return int(raw[raw.rindex(")") + 2 :].split()[19])


def age_seconds(pid: int) -> float:
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime - start_ticks(pid) / os.sysconf("SC_CLK_TCK")


def until(predicate, timeout: float, interval: float = 0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


class Server:
    def __init__(self, key: str, argv: list[str], env: dict[str, str], workdir: Path):
        self.key, self.argv, self.env, self.workdir = key, argv, env, workdir
        self.proc: subprocess.Popen | None = None
        self.port = int(argv[argv.index("-b") + 1].rsplit(":", 1)[1])

    def start(self) -> float:
        started = time.monotonic()
        log = open(self.workdir / f"{self.key}.log", "ab")
        self.proc = subprocess.Popen(self.argv, env={**os.environ, **self.env}, stdout=log, stderr=log,
                                     cwd=APPS, start_new_session=True)
        seen: set[int] = set()

        def all_serving():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.key}: exited with {self.proc.returncode} before {W} workers answered; "
                                   f"see {self.workdir}/{self.key}.log")
            pid = get_pid(self.port, timeout=1)
            if pid:
                seen.add(pid)
            return len(seen) >= W

        if not until(all_serving, 180):
            raise RuntimeError(f"{self.key}: {W} workers never answered; see {self.workdir}/{self.key}.log")
        return time.monotonic() - started

    def worker_pids(self) -> set[int]:
        seen: set[int] = set()
        until(lambda: (seen.add(p) if (p := get_pid(self.port)) else None) or len(seen) >= W, 30)
        return seen

    def gc_everywhere(self) -> None:
        done: set[int] = set()
        until(lambda: (done.add(p) if (p := get_pid(self.port, "/gc", timeout=30)) else None) or len(done) >= W, 120)

    def tree_pss(self) -> int:
        assert self.proc
        return sum(pss(p) for p in {self.proc.pid, *descendants(self.proc.pid)})

    def settled_tree_pss(self) -> int:
        """The tree's PSS once two reads in a row agree within 0.5 % (the last /gc answers are
        still being written when gc_everywhere returns); at most 10 s."""
        previous = self.tree_pss()

        def settled():
            nonlocal previous
            current = self.tree_pss()
            stable = abs(current - previous) <= previous * 0.005
            previous = current
            return current if stable else None

        return until(settled, 10, 0.2) or previous

    def kill_one(self) -> float:
        """Kill the longest-running worker once it has served 10.5 s: arbiter backs off a slot that
        fails again within 10 s of becoming ready (crash-loop protection), which is not what this
        figure is about. Every server gets the same spacing."""
        before = self.worker_pids()
        victim = min(before, key=start_ticks)
        until(lambda: age_seconds(victim) >= 10.5, 30, 0.05)
        killed = time.monotonic()
        os.kill(victim, signal.SIGKILL)

        def new_pid_answers():
            pid = get_pid(self.port, timeout=1)
            return pid is not None and pid not in before
        if not until(new_pid_answers, 60, 0.002):
            raise RuntimeError(f"{self.key}: no replacement answered")
        elapsed = time.monotonic() - killed
        until(lambda: len(self.worker_pids()) >= W, 60)
        return elapsed

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            tree = descendants(self.proc.pid)
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            for pid in tree:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def arbiter_argv(arbiter: str, python: str, port: int, ctl: Path, app: str, workers: int, preload: bool) -> list[str]:
    argv = [arbiter, "run", "-w", str(workers), "-b", f"127.0.0.1:{port}", "--python", python, "--chdir", str(APPS),
            "--control", str(ctl), "--no-access-log", "--log-level", "warning", "--boot-timeout", "120"]
    return argv + (["--preload"] if preload else []) + [app]


def ctl_reload(arbiter: str, ctl: Path) -> float:
    started = time.monotonic()
    subprocess.run([arbiter, "ctl", "--control", str(ctl), "reload"], check=True, capture_output=True, timeout=300)
    return time.monotonic() - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arbiter", required=True)
    ap.add_argument("--python", required=True, help="interpreter of the app venv (fastapi, uvicorn)")
    ap.add_argument("--gunicorn", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--big-mb", type=int, default=150)
    args = ap.parse_args()
    env = {"BIG_APP_MB": str(args.big_mb)}
    work = Path(tempfile.mkdtemp(prefix="bench-preload-"))
    results: dict[str, dict] = {}
    servers = {
        "arbiter --preload": lambda p: Server("arbiter-preload", arbiter_argv(args.arbiter, args.python, p, work / "pre.sock", "big_app:app", W, True), env, work),
        "arbiter (exec)": lambda p: Server("arbiter-exec", arbiter_argv(args.arbiter, args.python, p, work / "exec.sock", "big_app:app", W, False), env, work),
        "gunicorn --preload + UvicornWorker": lambda p: Server("gunicorn-preload", [args.gunicorn, "--preload", "-w", str(W), "-k", "uvicorn_worker.UvicornWorker", "-b", f"127.0.0.1:{p}", "--chdir", str(APPS), "--log-level", "warning", "big_app:app"], env, work),
    }
    for label, make in servers.items():
        server = make(free_port())
        print(f"== {label}", flush=True)
        try:
            figures = {"start_s": server.start()}
            server.gc_everywhere()
            figures["tree_pss_mib"] = server.settled_tree_pss() / 1048576
            kills = [server.kill_one() for _ in range(args.kills)]
            figures["kill_median_ms"] = statistics.median(kills) * 1000
            figures["kill_all_ms"] = [round(k * 1000, 1) for k in kills]
            if label.startswith("arbiter"):
                ctl = work / ("pre.sock" if "preload" in label else "exec.sock")
                figures["reload_big_w4_s"] = ctl_reload(args.arbiter, ctl)
            results[label] = figures
            print(json.dumps(figures), flush=True)
        finally:
            server.stop()

    # hello app, W=8: reload time for both spawners
    for label, preload in (("arbiter --preload", True), ("arbiter (exec)", False)):
        port, ctl = free_port(), work / f"hello-{preload}.sock"
        server = Server(f"hello-{preload}", arbiter_argv(args.arbiter, args.python, port, ctl, "hello:app", 8, preload), {}, work)
        try:
            server.start()
            times = [ctl_reload(args.arbiter, ctl) for _ in range(3)]
            results[label]["reload_hello_w8_s"] = statistics.median(times)
            if preload:
                load = LoadRun(args.python, f"http://127.0.0.1:{port}/", work, connections=32, seconds=60)
                try:
                    until(lambda: load.progress().get("ok", 0) > 500, 30, 0.05)
                    for _ in range(3):
                        ctl_reload(args.arbiter, ctl)
                    report = load.stop()
                finally:
                    load.close()
                results[label]["reload_under_load_failed"] = report["failed"]
                results[label]["reload_under_load_total"] = report["total"]
            print(label, json.dumps(results[label]), flush=True)
        finally:
            server.stop()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "preload.json").write_text(json.dumps(results, indent=2))
    g = results["gunicorn --preload + UvicornWorker"]
    pre, exe = results["arbiter --preload"], results["arbiter (exec)"]
    lines = [
        "# --preload: fork server benchmark",
        "",
        f"`tests/bench/run.sh preload` on {os.cpu_count()} CPUs; big app = {args.big_mb} MiB of Python objects at import, W={W}; "
        "one run, all servers side by side.",
        "",
        "| figure | arbiter --preload | arbiter (exec) | gunicorn --preload + UvicornWorker | target | arbiter --preload vs target |",
        "|---|---:|---:|---:|---|---|",
        f"| whole-tree PSS after a full gc in every worker | {pre['tree_pss_mib']:.0f} MiB | {exe['tree_pss_mib']:.0f} MiB | {g['tree_pss_mib']:.0f} MiB | ≤ 0.6× gunicorn | {pre['tree_pss_mib'] / g['tree_pss_mib']:.2f}× |",
        f"| start → {W} serving | {pre['start_s']:.2f} s | {exe['start_s']:.2f} s | {g['start_s']:.2f} s | ≤ 1.0× gunicorn | {pre['start_s'] / g['start_s']:.2f}× |",
        f"| SIGKILL → replacement serving, median of {args.kills} | {pre['kill_median_ms']:.0f} ms | {exe['kill_median_ms']:.0f} ms | {g['kill_median_ms']:.0f} ms | ≤ 1.0× gunicorn | {pre['kill_median_ms'] / g['kill_median_ms']:.2f}× |",
        f"| reload, hello app, W=8 (median of 3) | {pre['reload_hello_w8_s']:.2f} s | {exe['reload_hello_w8_s']:.2f} s | cannot reload code | ≤ 1.0 s | {pre['reload_hello_w8_s']:.2f} s |",
        f"| reload, big app, W={W} | {pre['reload_big_w4_s']:.2f} s | {exe['reload_big_w4_s']:.2f} s | cannot reload code | ≤ 0.3× exec | {pre['reload_big_w4_s'] / exe['reload_big_w4_s']:.2f}× |",
        f"| failed requests, 3 reloads under keep-alive load (hello, W=8) | {pre['reload_under_load_failed']} / {pre['reload_under_load_total']} | | | 0 | |",
        "",
        "Method: start and kill are timed from outside until the worker pids answer HTTP (new connection per probe); "
        "PSS is smaps_rollup of the master and every descendant after each worker answered /gc; reload is `arbiter ctl reload`, "
        "which returns once the new workers are ready and the old ones have exited.",
    ]
    (out / "preload.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
