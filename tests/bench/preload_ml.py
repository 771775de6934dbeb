"""Fork server benchmark with a real data-science app (issue 18): W=4, side by side in one run.

    tests/bench/run.sh preload-ml [--kills N] [--mb M]   (writes docs/benchmarks/preload-ml.md and .json)

The app is tests/apps/real/ml_app.py: numpy + pandas + scikit-learn, REAL_APP_MB (128) MiB of float64
arrays in a DataFrame built at import and a model trained on them, /predict answering from it.
Servers: arbiter --preload, gunicorn --preload + UvicornWorker (the newest gunicorn from PyPI), and
arbiter in exec mode as a reference. Figures, each measured the same way for every server, from
outside, over loopback (the harness is tests/bench/preload.py's):
- start: from the server's exec until W distinct worker pids have answered HTTP;
- tree PSS: smaps_rollup Pss of the master and every descendant, after each worker answered /gc;
- kill: SIGKILL of one worker until a pid that did not exist before answers; median of N;
- prediction req/s: wrk (keep-alive, 1 thread, 16 connections, 10 s) on /predict.
A server that refuses the app (arbiter --preload before its thread rule knew OpenBLAS) is reported
with its reason instead of figures. Benchmarks never fail on a timing: they print figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from preload import APPS, W, Server, arbiter_argv, free_port  # noqa: E402

APP = "real.ml_app:app"
PREDICT = "/predict?a=1.5&b=-0.25&c=2&d=0.1"
VERSIONS = ("import json, gunicorn, numpy, pandas, sklearn, uvicorn; "
            "print(json.dumps({m.__name__: m.__version__ for m in (gunicorn, numpy, pandas, sklearn, uvicorn)}))")


def requests_per_second(wrk: str, port: int, seconds: int) -> dict:
    result = subprocess.run([wrk, "-t1", "-c16", f"-d{seconds}s", f"http://127.0.0.1:{port}{PREDICT}"],
                            capture_output=True, text=True, timeout=seconds + 60)
    rate = re.search(r"Requests/sec:\s+([0-9.]+)", result.stdout)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", result.stdout)
    errors = re.search(r"Socket errors: (.*)", result.stdout)
    return {"rps": float(rate.group(1)) if rate else 0.0, "non_2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": errors.group(1) if errors else "none"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arbiter", required=True)
    ap.add_argument("--python", required=True, help="interpreter of the bench venv (gunicorn, numpy, pandas, scikit-learn)")
    ap.add_argument("--gunicorn", required=True)
    ap.add_argument("--wrk", default="wrk")
    ap.add_argument("--out", required=True)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--mb", type=int, default=128)
    ap.add_argument("--seconds", type=int, default=10, help="length of the req/s run")
    args = ap.parse_args()
    env = {"REAL_APP_MB": str(args.mb)}
    work = Path(tempfile.mkdtemp(prefix="bench-preload-ml-"))
    servers = {
        "arbiter --preload": lambda p: Server("arbiter-preload", arbiter_argv(args.arbiter, args.python, p, work / "pre.sock", APP, W, True), env, work),
        "gunicorn --preload + UvicornWorker": lambda p: Server("gunicorn-preload", [
            args.gunicorn, "--preload", "-w", str(W), "-k", "uvicorn_worker.UvicornWorker", "-b", f"127.0.0.1:{p}",
            "--chdir", str(APPS), "--log-level", "warning", "--timeout", "120", APP], env, work),
        "arbiter (exec)": lambda p: Server("arbiter-exec", arbiter_argv(args.arbiter, args.python, p, work / "exec.sock", APP, W, False), env, work),
    }
    versions = subprocess.run([args.python, "-c", VERSIONS], capture_output=True, text=True, check=True).stdout
    results: dict[str, dict] = {"_versions": json.loads(versions), "_mb": args.mb, "_load": os.getloadavg()[0]}
    for label, make in servers.items():
        server = make(free_port())
        print(f"== {label}", flush=True)
        try:
            figures = {"start_s": server.start()}
            server.gc_everywhere()
            figures["tree_pss_mib"] = server.settled_tree_pss() / 1048576
            figures.update(requests_per_second(args.wrk, server.port, args.seconds))
            kills = [server.kill_one() for _ in range(args.kills)]
            figures["kill_median_ms"] = statistics.median(kills) * 1000
            figures["kill_all_ms"] = [round(k * 1000, 1) for k in kills]
        except RuntimeError as failure:
            log = (work / f"{server.key}.log").read_text(errors="replace").strip().splitlines()
            figures = {"failed": str(failure), "log": log[-12:]}
        finally:
            server.stop()
        results[label] = figures
        print(json.dumps(figures), flush=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "preload-ml.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "preload-ml.md").write_text(report(results, args) + "\n")
    print(report(results, args))


def report(results: dict, args: argparse.Namespace) -> str:
    pre, g, exe = (results[k] for k in ("arbiter --preload", "gunicorn --preload + UvicornWorker", "arbiter (exec)"))
    v = results["_versions"]

    def cell(figures: dict, key: str, fmt: str) -> str:
        return fmt.format(figures[key]) if key in figures else "refused" if "failed" in figures else "—"

    def ratio(key: str) -> str:
        return f"{pre[key] / g[key]:.2f}×" if key in pre and key in g and g[key] else "—"

    rows = [
        ("whole-tree PSS after a full gc in every worker", "tree_pss_mib", "{:.0f} MiB", "≤ 0.6×"),
        (f"start → {W} serving", "start_s", "{:.2f} s", "≤ 1.0×"),
        (f"SIGKILL → replacement serving, median of {args.kills}", "kill_median_ms", "{:.0f} ms", "≤ 1.0×"),
        (f"prediction requests per second at W={W}", "rps", "{:.0f}", "≥ 1.0×"),
    ]
    lines = [
        "# --preload with a real data-science app (numpy + pandas + scikit-learn)",
        "",
        f"`tests/bench/run.sh preload-ml` on {os.cpu_count()} CPUs (load average {results['_load']:.1f} at the start: "
        "other work shared the CPUs); tests/apps/real/ml_app.py with "
        f"REAL_APP_MB={results['_mb']} (a {results['_mb']} MiB DataFrame built at import, a scikit-learn model trained on it), "
        f"W={W}; one run, all servers side by side. gunicorn {v['gunicorn']}, uvicorn {v['uvicorn']}, numpy {v['numpy']}, "
        f"pandas {v['pandas']}, scikit-learn {v['sklearn']}.",
        "",
        "| figure | arbiter --preload | gunicorn --preload + UvicornWorker | arbiter (exec), reference | target (arbiter --preload vs gunicorn) | ratio |",
        "|---|---:|---:|---:|---|---|",
    ]
    for name, key, fmt, target in rows:
        lines.append(f"| {name} | {cell(pre, key, fmt)} | {cell(g, key, fmt)} | {cell(exe, key, fmt)} | {target} | {ratio(key)} |")
    lines += [
        "",
        "Method: start and kill are timed from outside until the worker pids answer HTTP (a new connection per probe); "
        "PSS is smaps_rollup of the master and every descendant after each worker answered /gc; req/s is "
        f"`wrk -t1 -c16 -d{args.seconds}s` on `{PREDICT}` (keep-alive; wrk shares the 2 CPUs with the servers, the same for each).",
    ]
    for label in ("arbiter --preload", "gunicorn --preload + UvicornWorker", "arbiter (exec)"):
        figures = results[label]
        if "failed" in figures:
            lines += ["", f"{label} did not serve: {figures['failed']}. Its last lines:", "", "```", *figures["log"], "```"]
        elif figures.get("non_2xx") or figures.get("socket_errors", "none") != "none":
            lines += ["", f"{label}: wrk saw {figures['non_2xx']} non-2xx responses, socket errors: {figures['socket_errors']}."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
