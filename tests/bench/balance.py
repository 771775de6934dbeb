"""Balance and autoscaling benchmark (issue 12), side by side in one run.

    tests/bench/run.sh balance            full run, ~30 min on 2 CPUs: docs/benchmarks/balance.{md,json,png}
    tests/bench/run.sh balance --smoke    every scenario once and short (~3 min): .cache/bench-smoke/

Scenarios, each measured the same way for every server it compares:
- fairness: 4 workers, wrk with 64 keep-alive connections for FAIR_S, a fresh server per run, RUNS
  runs. Per-worker request counts come from the app itself (bench_app writes its count every 0.5 s,
  the same for every server); max/mean and min/mean per run. Servers: arbiter --balance even (the
  default), arbiter --balance kernel (uvicorn's own accept loop: the shared mode before issue 12),
  gunicorn + UvicornWorker.
- throughput: JSON hello, 2 workers, wrk 64 connections keep-alive (and Connection: close, which
  pays the shim's accept path on every request), even vs kernel, alternating, ROUNDS rounds.
- mixed p99: 4 workers, vegeta at two fixed rates, MIXED_LOADS of what kernel mode answers
  closed-loop on hello with wrk (vegeta's own CPU makes 40 % near saturation on 2 shared CPUs; at
  15 % every server answers in under 2 ms and the accept policy does not show), every tenth request
  GET /slow (awaits 200 ms), the rest GET / (hello); p99 of the fast requests only, median of the
  rounds. Servers: even, kernel, gunicorn + UvicornWorker, in a rotating order.
- autoscale step: tests/apps/sync_driver.py (each request blocks its worker's loop 20 ms, so one
  worker answers ~50/s), vegeta at 20/s, then 160/s, then 20/s again (STEP phases). Configurations:
  --autoscale 1:8 (exec), --autoscale 1:8 --preload, the same with --autoscale-up-after 0.25 (the
  knob for a sharper reaction), and a fixed -w 8. Workers are sampled from
  `ctl status` every 0.25 s; p99 in 1-second windows by request start. Figures: worker-seconds, p99
  of the whole run, time from the step until the windowed p99 stays under twice its steady value
  (the last third of the 160/s phase), and a chart of workers and p99 over time.
`--only step` (or any subset) reruns those scenarios and keeps the others from the saved JSON; the
report says which parts were rerun when.
Benchmarks never fail on a timing: they print figures. Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
from bench import (  # noqa: E402
    APPS, LOADS, Arbiter, GunicornUvicorn, Instance, http_get, log, percentile, run_then_clean_up, run_wrk,
    wait_cpu_quiet,
)

TEST_APPS = ROOT / "tests" / "apps"
MIXED_LOADS = (("moderate", 0.3), ("heavy", 0.4))


class Harness:
    """What bench.Instance and the server classes need from bench.py's harness."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.venv = Path(args.venv).resolve()
        self.python = self.venv / "bin" / "python"
        self.arbiter = Path(args.arbiter).resolve()
        self.vegeta = args.vegeta
        self.tmp = Path(tempfile.mkdtemp(prefix="arbiter-balance-"))


class ArbiterWith(Arbiter):
    """arbiter with extra flags (--balance, --autoscale, --preload) before the app."""

    def __init__(self, h: Harness, key: str, label: str, flags: list[str]) -> None:
        super().__init__(h, False)
        self.key, self.label, self.flags = key, label, flags

    def argv(self, workers, port, inst, extra):
        a = super().argv(workers, port, inst, extra)
        return a[:-1] + self.flags + extra.get("flags", []) + a[-1:]


# ---------------------------------------------------------------------------------------- helpers


def start(h: Harness, server, workers: int, **extra) -> Instance | None:
    inst = Instance(h, server, workers, extra)
    if extra.get("ctl_ready"):
        ok = inst.wait_until(lambda: (s := inst.ctl_status()) is not None and s.get("ready_workers") == workers, 120, 0.05)
        ok = ok and inst.wait_until(lambda: http_get(inst.port, extra.get("probe", "/"))[0] == 200, 30, 0.05)
    else:
        ok = inst.wait_ready(120)
    if not ok:
        log(f"  ! {server.key} did not start; see {inst.dir}/server.log")
        inst.stop()
        return None
    return inst


def counts(inst: Instance) -> dict[int, int]:
    out = {}
    for name in os.listdir(inst.count_dir):
        if name.isdigit():
            try:
                out[int(name)] = int((inst.count_dir / name).read_text() or 0)
            except (OSError, ValueError):
                pass
    return out


def vegeta_attack(h: Harness, targets: list[str], rate: int, seconds: float, workdir: Path, name: str) -> list[tuple]:
    """Open-loop attack; returns (start_ns, code, latency_s, url, error) for every request."""
    out = workdir / f"{name}.bin"
    with open(out, "wb") as f:
        subprocess.run([h.vegeta, "attack", f"-rate={rate}/s", f"-duration={seconds}s", "-timeout=30s",
                        "-keepalive=true", "-http2=false", "-max-body=0"],
                       input="\n".join(targets).encode() + b"\n", stdout=f, timeout=seconds + 60, check=True)
    text = subprocess.run([h.vegeta, "encode", "-to", "csv", str(out)], capture_output=True, text=True,
                          timeout=120, check=True).stdout
    rows = []
    for row in csv.reader(io.StringIO(text)):
        if len(row) >= 11:
            rows.append((int(row[0]), int(row[1]), int(row[2]) / 1e9, row[10], row[5]))
    return rows


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def meta(h: Harness, command: str) -> dict:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass

    def version(module: str) -> str | None:
        p = subprocess.run([str(h.python), "-c", f"import importlib.metadata as m; print(m.version('{module}'))"],
                           capture_output=True, text=True)
        return p.stdout.strip() or None

    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu, "cpus": os.cpu_count(),
        "kernel": platform.release(), "command": command,
        "arbiter": subprocess.run([str(h.arbiter), "--version"], capture_output=True, text=True).stdout.strip(),
        "versions": {m: version(m) for m in ("uvicorn", "uvloop", "httptools", "fastapi", "gunicorn", "uvicorn-worker")},
        "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
    }


# -------------------------------------------------------------------------------------- scenarios


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.h = Harness(args)
        self.out = Path(args.out).resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.smoke = args.smoke
        h = self.h
        self.even = ArbiterWith(h, "even", "arbiter --balance even (default)", ["--balance", "even"])
        self.kernel = ArbiterWith(h, "kernel", "arbiter --balance kernel (shared mode before)", ["--balance", "kernel"])
        self.gunicorn = GunicornUvicorn(h)
        self.gunicorn.key = "gunicorn"
        if self.smoke:
            self.c = dict(runs=2, fair_s=2, rounds=1, tput_s=2, mixed_s=4, mixed_rounds=1,
                          step=[(20, 4), (160, 8), (20, 10)], idle_s=2)
        else:
            self.c = dict(runs=10, fair_s=5, rounds=5, tput_s=5, mixed_s=15, mixed_rounds=5,
                          step=[(20, 30), (160, 60), (20, 90)], idle_s=20)
        if args.runs:
            self.c["runs"] = args.runs
        self.results: dict = {"meta": meta(h, os.environ.get("BENCH_COMMAND", "tests/bench/run.sh balance")),
                              "config": dict(self.c), "fairness": [], "throughput": [], "mixed": [], "step": []}

    def save(self) -> None:
        name = "balance-smoke.json" if self.smoke else "balance.json"
        (self.out / name).write_text(json.dumps(self.results, indent=1))

    # ---- fairness
    def fairness(self) -> None:
        for run in range(self.c["runs"]):
            for server in (self.even, self.kernel, self.gunicorn):
                inst = start(self.h, server, 4, count=True)
                if inst is None:
                    continue
                try:
                    wait_cpu_quiet(10)
                    before = counts(inst)
                    r = run_wrk(inst.url("/"), 64, self.c["fair_s"])
                    served = r.get("requests", 0)
                    inst.wait_until(lambda: sum(counts(inst).values()) - sum(before.values()) >= served, 15, 0.1)
                    after = counts(inst)
                    per = sorted(after.get(p, 0) - before.get(p, 0) for p in inst.workers())
                    mean = sum(per) / len(per) if per and sum(per) else None
                    rec = {"server": server.key, "run": run, "per_worker": per, "rps": r.get("rps"),
                           "failed": r.get("failed"),
                           "max_over_mean": max(per) / mean if mean else None,
                           "min_over_mean": min(per) / mean if mean else None}
                    self.results["fairness"].append(rec)
                    log(f"fairness run {run} {server.key}: {per} max/mean {rec['max_over_mean'] or 0:.2f} "
                        f"min/mean {rec['min_over_mean'] or 0:.2f}")
                finally:
                    inst.stop()
            self.save()

    # ---- throughput
    def throughput(self) -> None:
        for rnd in range(self.c["rounds"]):
            for server in ((self.even, self.kernel) if rnd % 2 == 0 else (self.kernel, self.even)):
                inst = start(self.h, server, 2)
                if inst is None:
                    continue
                try:
                    wait_cpu_quiet(10)
                    for close in (False, True):
                        run_wrk(inst.url("/"), 64, 1, close=close)
                        r = run_wrk(inst.url("/"), 64, self.c["tput_s"], close=close)
                        self.results["throughput"].append({"server": server.key, "round": rnd, "close": close,
                                                           "rps": r.get("rps"), "failed": r.get("failed")})
                        log(f"throughput round {rnd} {server.key} {'close' if close else 'keep-alive'}: {r.get('rps')} req/s")
                finally:
                    inst.stop()
            self.save()

    # ---- mixed load
    def mixed(self) -> None:
        inst = start(self.h, self.kernel, 4)
        capacity = 0.0
        if inst is not None:
            try:
                run_wrk(inst.url("/"), 64, 1)
                capacity = run_wrk(inst.url("/"), 64, 3).get("rps") or 0.0
            finally:
                inst.stop()
        self.results["mixed_capacity"] = capacity
        self.results["mixed_rates"] = {}
        loads = ((f"{self.args.rate} req/s (--rate)", None),) if self.args.rate else MIXED_LOADS
        for load, fraction in loads:
            rate = self.args.rate or max(100, int((capacity or 1250) * (fraction or 0)) // 50 * 50)
            self.results["mixed_rates"][load] = rate
            log(f"mixed load, {load}: {rate} req/s (10% await 200 ms)")
            self.mixed_at(load, rate)

    def mixed_at(self, load: str, rate: int) -> None:
        servers = [self.even, self.kernel, self.gunicorn]
        for rnd in range(self.c["mixed_rounds"]):
            for server in servers[rnd % 3:] + servers[: rnd % 3]:
                inst = start(self.h, server, 4)
                if inst is None:
                    continue
                try:
                    wait_cpu_quiet(10)
                    targets = [f"GET {inst.url('/')}"] * 9 + [f"GET {inst.url('/slow')}"]
                    rows = vegeta_attack(self.h, targets, rate, self.c["mixed_s"], inst.dir, "mixed")
                    fast = [lat for _, code, lat, url, err in rows if not url.endswith("/slow") and 200 <= code < 300 and not err]
                    slow = [lat for _, code, lat, url, err in rows if url.endswith("/slow") and 200 <= code < 300 and not err]
                    failed = sum(1 for _, code, _, _, err in rows if not 200 <= code < 300 or err)
                    rec = {"server": server.key, "load": load, "round": rnd, "rate": rate, "requests": len(rows), "failed": failed,
                           "fast_p50_ms": (percentile(fast, 50) or 0) * 1000, "fast_p99_ms": (percentile(fast, 99) or 0) * 1000,
                           "slow_p99_ms": (percentile(slow, 99) or 0) * 1000}
                    self.results["mixed"].append(rec)
                    log(f"mixed {load} round {rnd} {server.key}: fast p50 {rec['fast_p50_ms']:.1f} p99 {rec['fast_p99_ms']:.1f} ms, "
                        f"slow p99 {rec['slow_p99_ms']:.0f} ms, failed {failed}")
                finally:
                    inst.stop()
            self.save()

    # ---- autoscale step load
    def step(self) -> None:
        idle = ["--autoscale-idle", str(self.c["idle_s"])]
        configs = [
            ("autoscale", "--autoscale 1:8", 1, ["--autoscale", "1:8", *idle]),
            ("autoscale-preload", "--autoscale 1:8 --preload", 1, ["--autoscale", "1:8", "--preload", *idle]),
            ("autoscale-preload-fast", "--autoscale 1:8 --preload --autoscale-up-after 0.25", 1,
             ["--autoscale", "1:8", "--preload", "--autoscale-up-after", "0.25", *idle]),
            ("fixed-8", "-w 8 (fixed, = MAX)", 8, []),
        ]
        for key, label, workers, flags in configs:
            server = ArbiterWith(self.h, key, label, flags)
            inst = start(self.h, server, workers, app="sync_driver:app", appdir=TEST_APPS, ctl_ready=True)
            if inst is None:
                continue
            samples: list[tuple[float, int, int, int]] = []
            stop = threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    st = inst.ctl_status()
                    if st:
                        live = sum(1 for w in st["workers"] if w.get("pid"))
                        samples.append((time.time(), st["target_workers"], st["ready_workers"], live))
                    stop.wait(0.25)

            sampler = threading.Thread(target=sample, daemon=True)
            try:
                wait_cpu_quiet(10)
                sampler.start()
                rows, phases = [], []
                for number, (rate, seconds) in enumerate(self.c["step"]):
                    phases.append((time.time(), rate))
                    rows += vegeta_attack(self.h, [f"GET {inst.url('/')}"], rate, seconds, inst.dir, f"step{number}")
                phases.append((time.time(), 0))
            finally:
                stop.set()
                if sampler.is_alive():
                    sampler.join(5)
                inst.stop()
            rec = self.summarise_step(key, label, rows, phases, samples)
            self.results["step"].append(rec)
            log(f"step {key}: worker-seconds {rec['worker_seconds']:.0f}, p99 {rec['p99_ms']:.0f} ms "
                f"(160/s phase {rec['p99_high_ms']:.0f} ms), recovery {rec['recovery_s']} s, failed {rec['failed']}")
            self.save()

    @staticmethod
    def summarise_step(key, label, rows, phases, samples) -> dict:
        t0, t_end = phases[0][0], phases[-1][0]
        t_step, t_back = phases[1][0], phases[2][0]
        ok = [(start_ns / 1e9, lat) for start_ns, code, lat, _, err in rows if 200 <= code < 300 and not err]
        failed = sum(1 for _, code, _, _, err in rows if not 200 <= code < 300 or err)
        windows: dict[int, list[float]] = {}
        for started, lat in ok:
            windows.setdefault(int(started - t0), []).append(lat)
        series = [(second, percentile(lats, 99) * 1000) for second, lats in sorted(windows.items())]
        high = [lat for started, lat in ok if t_step <= started < t_back]
        last_third = [lat for started, lat in ok if t_back - (t_back - t_step) / 3 <= started < t_back]
        steady = (percentile(last_third, 99) or 0) * 1000
        recovery = None
        step_second, back_second = int(t_step - t0), int(t_back - t0)
        in_high = [(s, p) for s, p in series if step_second <= s < back_second]
        for i, (second, _) in enumerate(in_high):
            if all(p <= 2 * steady for _, p in in_high[i:]):
                recovery = second - (t_step - t0)
                break
        worker_seconds = 0.0
        inside = [s for s in samples if t0 <= s[0] <= t_end]
        for (t, _, _, live), nxt in zip(inside, inside[1:]):
            worker_seconds += live * (nxt[0] - t)
        first_up = next((t - t_step for t, target, _, _ in samples if t >= t_step and target > samples[0][1]), None)
        return {
            "config": key, "label": label, "requests": len(rows), "failed": failed,
            "p99_ms": (percentile([lat for _, lat in ok], 99) or 0) * 1000,
            "p99_high_ms": (percentile(high, 99) or 0) * 1000, "steady_p99_ms": steady,
            "recovery_s": round(recovery, 1) if recovery is not None else None,
            "first_scale_up_s": round(first_up, 2) if first_up is not None else None,
            "worker_seconds": worker_seconds, "duration_s": t_end - t0,
            "max_workers": max((s[3] for s in inside), default=0),
            "phases": [(t - t0, rate) for t, rate in phases],
            "workers_over_time": [(round(t - t0, 2), target, ready, live) for t, target, ready, live in inside],
            "p99_over_time": series,
        }

    def run(self) -> None:
        everything = ["fairness", "throughput", "mixed", "step"]
        wanted = self.args.only.split(",") if self.args.only else everything
        unknown = [name for name in wanted if name not in everything]
        if unknown:
            raise SystemExit(f"balance.py: --only {','.join(unknown)}: choose from {','.join(everything)}")
        saved = self.out / ("balance-smoke.json" if self.smoke else "balance.json")
        if self.args.only and saved.exists():  # a partial rerun: keep the other scenarios' figures
            previous = json.loads(saved.read_text())
            for name in everything:
                if name not in wanted:
                    self.results[name] = previous.get(name, [])
                    if name == "mixed":
                        self.results["mixed_capacity"] = previous.get("mixed_capacity")
                        self.results["mixed_rates"] = previous.get("mixed_rates")
            self.results["reruns"] = previous.get("reruns", []) + [
                {"parts": wanted, "date_utc": self.results["meta"]["date_utc"], "command": self.results["meta"]["command"]}]
            self.results["meta"] = previous["meta"]
            self.results["duration_s"] = previous.get("duration_s", 0)
        began = time.monotonic()
        for name in wanted:
            log(f"=== {name}")
            getattr(self, name)()
        if self.results.get("reruns"):
            self.results["reruns"][-1]["duration_s"] = round(time.monotonic() - began, 1)
        else:
            self.results["duration_s"] = round(time.monotonic() - began, 1)
            self.results["meta"]["loadavg_at_end"] = open("/proc/loadavg").read().split()[:3]
        self.save()
        report(self.results, self.out, self.smoke)
        log(f"done in {self.results['duration_s']} s")

    def cleanup(self) -> None:
        for p in LOADS:
            if p.poll() is None:
                p.kill()


# ----------------------------------------------------------------------------------------- report


def f(value, digits=2, suffix="") -> str:
    return "–" if value is None else f"{value:,.{digits}f}{suffix}"


def report(d: dict, out: Path, smoke: bool) -> None:
    lines: list[str] = []
    m = d["meta"]
    lines += ["# Balance and autoscaling (issue 12)", "",
              f"`{m['command']}` on {m['date_utc']}: {m['cpu']} ({m['cpus']} CPUs), Linux {m['kernel']}, "
              f"{m['arbiter']}; uvicorn {m['versions'].get('uvicorn')}, uvloop {m['versions'].get('uvloop')}, "
              f"gunicorn {m['versions'].get('gunicorn')} + uvicorn-worker {m['versions'].get('uvicorn-worker')}. "
              f"Load average {' '.join(m['loadavg_at_start'])} at the start, {' '.join(m.get('loadavg_at_end', []))} at the end; "
              f"{f(d.get('duration_s', 0) / 60, 1)} min. Method: the docstring of `tests/bench/balance.py`.", ""]
    for rerun in d.get("reruns", []):
        lines += [f"Rerun of {', '.join(rerun['parts'])} only: `{rerun['command']}` "
                  f"on {rerun['date_utc']} ({f(rerun.get('duration_s', 0) / 60, 1)} min); the other figures are from the run above.", ""]
    if smoke:
        lines += ["**Smoke run: short and single; not figures to quote.**", ""]

    fair = d["fairness"]

    def fair_of(key):
        rs = [r for r in fair if r["server"] == key and r["max_over_mean"] is not None]
        within = sum(1 for r in rs if r["max_over_mean"] <= 1.15 and r["min_over_mean"] >= 0.85)
        return rs, within

    even_f, even_in = fair_of("even")
    kern_f, kern_in = fair_of("kernel")
    gun_f, gun_in = fair_of("gunicorn")
    tp = d["throughput"]

    def tput(key, close):
        return med([r["rps"] for r in tp if r["server"] == key and r["close"] == close])

    mx = d["mixed"]

    def p99(key, load):
        return med([r["fast_p99_ms"] for r in mx if r["server"] == key and r.get("load", "heavy") == load])

    fixed = next((r for r in d["step"] if r["config"] == "fixed-8"), None)
    scaled = [r for r in d["step"] if r["config"] != "fixed-8"]

    def ratio(a, b):
        return a / b if a is not None and b else None

    lines += ["| figure | target | arbiter (even, default) | before (kernel) | gunicorn + UvicornWorker |",
              "|---|---|---:|---:|---:|"]
    worst = lambda rs, k, fn: fn(r[k] for r in rs) if rs else None  # noqa: E731
    lines.append(f"| keep-alive fairness, 4 workers, 64 connections: runs within max/mean ≤ 1.15 and min/mean ≥ 0.85 "
                 f"| 10 of 10 | **{even_in} of {len(even_f)}** | {kern_in} of {len(kern_f)} | {gun_in} of {len(gun_f)} |")
    lines.append(f"| worst max/mean, worst min/mean | ≤ 1.15, ≥ 0.85 | {f(worst(even_f, 'max_over_mean', max))}, "
                 f"{f(worst(even_f, 'min_over_mean', min))} | {f(worst(kern_f, 'max_over_mean', max))}, "
                 f"{f(worst(kern_f, 'min_over_mean', min))} | {f(worst(gun_f, 'max_over_mean', max))}, "
                 f"{f(worst(gun_f, 'min_over_mean', min))} |")
    lines.append(f"| throughput, JSON hello, W=2, keep-alive (req/s, median) | ≥ 0.97× before | {f(tput('even', False), 0)} "
                 f"(**{f(ratio(tput('even', False), tput('kernel', False)))}×**) | {f(tput('kernel', False), 0)} | – |")
    lines.append(f"| throughput, same, Connection: close (req/s, median) | – | {f(tput('even', True), 0)} "
                 f"({f(ratio(tput('even', True), tput('kernel', True)))}×) | {f(tput('kernel', True), 0)} | – |")
    rates = d.get("mixed_rates") or {"heavy": d.get("mixed_rate")}
    for load, rate in rates.items():
        lines.append(f"| p99 of the fast requests, mixed load, {load}: {rate} req/s, 4 workers (ms, median) "
                     f"| ≤ 0.7× before and gunicorn | {f(p99('even', load), 1)} (**{f(ratio(p99('even', load), p99('kernel', load)))}×**, "
                     f"**{f(ratio(p99('even', load), p99('gunicorn', load)))}×**) | {f(p99('kernel', load), 1)} "
                     f"| {f(p99('gunicorn', load), 1)} |")
    lines += ["", "Autoscaling, step load 20 → 160 → 20 req/s on `tests/apps/sync_driver.py` (20 ms of blocked loop per "
              "request); `--autoscale 1:8`, `--autoscale-idle " + str(d["config"]["idle_s"]) + "`, other knobs at their defaults:", "",
              "| figure | target | " + " | ".join(r["label"] for r in scaled) + " | fixed -w 8 |",
              "|---|---|" + "---:|" * (len(scaled) + 1)]

    def versus_fixed(key, digits):
        cells = [f"{f(r[key], digits)} (**{f(ratio(r[key], fixed[key]))}×**)" for r in scaled]
        return " | ".join(cells) + f" | {f(fixed[key], digits)} |"
    if fixed:
        lines.append("| worker-seconds | ≤ 0.6× fixed | " + versus_fixed("worker_seconds", 0))
        lines.append("| p99 of the whole run (ms) | ≤ 1.5× fixed | " + versus_fixed("p99_ms", 0))
    for name, key, digits in (("p99 during the 160/s phase (ms)", "p99_high_ms", 0),
                              ("steady p99, last third of the 160/s phase (ms)", "steady_p99_ms", 0),
                              ("time from the step until p99 stays under 2× steady (s)", "recovery_s", 1),
                              ("time from the step to the first scale-up (s)", "first_scale_up_s", 2),
                              ("most workers at once", "max_workers", 0), ("failed requests", "failed", 0),
                              ("requests", "requests", 0)):
        cells = [f(r[key], digits) if r else "–" for r in (*scaled, fixed)]
        lines.append(f"| {name} | {'report it' if key == 'recovery_s' else '–'} | {' | '.join(cells)} |")
    lines += ["", "![workers and p99 over time](balance.png)" if not smoke else "", "",
              "Per run: fairness (max/mean, min/mean of the per-worker request counts):", ""]
    for key, rs in (("even", even_f), ("kernel", kern_f), ("gunicorn", gun_f)):
        lines.append(f"- {key}: " + "; ".join(f"{f(r['max_over_mean'])}/{f(r['min_over_mean'])}" for r in rs))
    lines += ["", "Mixed load per round (fast p99 ms): " + "; ".join(
        f"{r.get('load', 'heavy')} {r['server']} {f(r['fast_p99_ms'], 1)}" for r in mx), ""]
    name = "balance-smoke" if smoke else "balance"
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    chart(d, out / f"{name}.png")


def chart(d: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing: no chart")
        return
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    for rec in d["step"]:
        t = [x[0] for x in rec["workers_over_time"]]
        top.step(t, [x[3] for x in rec["workers_over_time"]], where="post", label=rec["label"])
        bottom.plot([s for s, _ in rec["p99_over_time"]], [p for _, p in rec["p99_over_time"]], label=rec["label"])
    if d["step"]:
        for t, rate in d["step"][0]["phases"][1:-1]:
            for ax in (top, bottom):
                ax.axvline(t, color="grey", linestyle=":", linewidth=1)
    top.set_ylabel("worker processes")
    top.legend(loc="upper right", fontsize=8)
    bottom.set_ylabel("p99 per second (ms, log)")
    bottom.set_yscale("log")
    bottom.set_xlabel("seconds (load: 20/s, 160/s from the first dotted line, 20/s from the second)")
    fig.suptitle("Step load on a blocking app: workers and p99 over time")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--venv", required=True)
    ap.add_argument("--arbiter", required=True)
    ap.add_argument("--vegeta", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", help="comma-separated subset of: fairness,throughput,mixed,step")
    ap.add_argument("--runs", type=int, help="fairness runs (default 10)")
    ap.add_argument("--rate", type=int, help="mixed-load rate instead of the calibrated one")
    ap.add_argument("--report-only", action="store_true", help="rewrite the report from the saved JSON")
    args = ap.parse_args()
    if args.report_only:
        name = "balance-smoke" if args.smoke else "balance"
        report(json.loads((Path(args.out) / f"{name}.json").read_text()), Path(args.out), args.smoke)
        return
    run_then_clean_up(Bench(args))


if __name__ == "__main__":
    main()
