"""PROTOTYPE candidates for issue 12 (balanced accepts), measured side by side.

    python3 tests/bench/balance_candidates.py native,unbounded,bounded,yield,share,exclusive [close]
    env: W (workers, 4), C (wrk connections, 64), D (seconds, 3), REPS (3)

Needs build/arbiter and .venv (tests/requirements.txt) and wrk. Each candidate is selected in the
shim by BAL_EXPERIMENT (worker-shim/arbiter_worker/accept.py at this commit):
  native     uvicorn's own create_server accept loop (today's shared mode)
  unbounded  the shim's accept loop, accepting until EAGAIN (as asyncio does)
  bounded    the shim's accept loop, one accept per wake-up
  yield      one accept per wake-up, then sched_yield()
  share      up to 16 per wake-up while the worker holds no more than its share (+1) of the serving
             workers' connections (a shared board, /tmp/bal/board here); over its share it holds off,
             polling every 2 ms, and accepts anyway after 50 ms if the queue is still not empty
  exclusive  a thread per listener in epoll_wait on a private epoll registered with EPOLLEXCLUSIVE;
             it hands each wake-up to the loop and waits until the loop accepted
Prints, per run, wrk's req/s, the per-worker request counts (ctl status) and the per-worker
ESTABLISHED connections half-way through the run (ss -tnp).
"""
import json, os, re, subprocess, sys, time, collections, signal
from pathlib import Path
ROOT = Path(__file__).resolve().parents[2]
BIN = str(ROOT / "build/arbiter")
PY = str(ROOT / ".venv/bin/python")
APPS = str(ROOT / "tests/bench/apps")
os.makedirs("/tmp/bal", exist_ok=True)

def ctl(sock, *a):
    p = subprocess.run([BIN, "ctl", "--control", sock, "--json", *a], capture_output=True, text=True)
    try: return json.loads(p.stdout)
    except ValueError: return None

def start(mode, port, w, extra=()):
    sock = f"/tmp/bal/ctl-{port}.sock"
    env = []
    if mode != "native":
        env = ["--env", f"BAL_EXPERIMENT={mode}"]
    if mode == "share":
        with open("/tmp/bal/board", "wb") as f: f.write(b"\0" * 64 * 64)
        env += ["--env", "BAL_BOARD_PATH=/tmp/bal/board"]
    p = subprocess.Popen([BIN, "run", "-w", str(w), "-b", f"127.0.0.1:{port}", "--python", PY, "--chdir", APPS,
                          "--control", sock, "--no-access-log", "--log-level", "warning", "--timeout", "2", *env, *extra,
                          "bench_app:app"], stdout=open(f"/tmp/bal/arb-{port}.log", "ab"), stderr=subprocess.STDOUT)
    for _ in range(300):
        st = ctl(sock, "status")
        if st and st.get("ready_workers") == w: break
        time.sleep(0.1)
    return p, sock

def conns_per_pid(port):
    out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"], capture_output=True, text=True).stdout
    c = collections.Counter(re.findall(r"pid=(\d+)", out))
    return c

def run(mode, port, w=4, c=64, d=3, close=False, reps=3):
    p, sock = start(mode, port, w)
    res = []
    try:
        for r in range(reps):
            before = {x["pid"]: x["requests"] for x in ctl(sock, "status")["workers"]}
            args = ["wrk", "-t1", f"-c{c}", f"-d{int(d)}s", "--timeout", "5s"] + (["-H", "Connection: close"] if close else []) + [f"http://127.0.0.1:{port}/"]
            wp = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            time.sleep(d / 2)
            cp = conns_per_pid(port)
            out = wp.communicate(timeout=d + 20)[0]
            mm = re.search(r"Requests/sec:\s+([\d.]+)", out)
            if not mm: print(out); continue
            rps = float(mm.group(1))
            errs = re.search(r"Socket errors.*", out)
            time.sleep(0.7)
            after = {x["pid"]: x["requests"] for x in ctl(sock, "status")["workers"]}
            per = sorted(after[k] - before.get(k, 0) for k in after)
            m = sum(per) / len(per)
            conns = sorted(cp.get(str(k), 0) for k in after)
            res.append((rps, per, conns))
            cm = max(1e-9, sum(conns)/len(conns))
            print(f"conns max/mean {max(conns)/cm:.2f} min/mean {min(conns)/cm:.2f}", end=" ")
            print(f"{mode:10s} {'close' if close else 'keep'} rps {rps:8.0f} req {per} max/mean {max(per)/m:.2f} min/mean {min(per)/m:.2f} conns {conns} {errs.group(0) if errs else ''}", flush=True)
    finally:
        p.send_signal(signal.SIGINT); p.wait(30)
    return res

if __name__ == "__main__":
    modes = sys.argv[1].split(",")
    close = "close" in sys.argv[2:]
    w = int(os.environ.get("W", 4)); c = int(os.environ.get("C", 64)); reps = int(os.environ.get("REPS", 3)); d = float(os.environ.get("D", 3))
    for i, m in enumerate(modes):
        run(m, 18600 + i, w=w, c=c, d=d, close=close, reps=reps)
