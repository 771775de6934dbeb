#!/usr/bin/env bash
# Time to serve /metrics with many workers (issue 7: "time to serve /metrics with 64 workers").
#
#   tests/bench/metrics_time.sh            64 workers, median of 20 scrapes
#   WORKERS=16 SCRAPES=50 tests/bench/metrics_time.sh
#
# Starts build/arbiter with tests/apps/hello.py on loopback, waits (bounded) until every worker is
# ready, then times SCRAPES GET /metrics, each on a fresh connection from a raw socket (connect,
# send, read to close: what a Prometheus scrape costs the arbiter plus loopback), and prints the
# figures. A benchmark, not a test: it never fails on a timing. Needs the test venv (.venv, made by
# scripts/test.sh) and a built arbiter.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${ARBITER_TEST_PYTHON:-$ROOT/.venv/bin/python}"
ARBITER="${ARBITER_BIN:-$ROOT/build/arbiter}"
[[ -x "$ARBITER" ]] || { echo "metrics_time: $ARBITER not built (cmake -S . -B build && cmake --build build -j2)" >&2; exit 2; }
[[ -x "$PYTHON" ]] || { echo "metrics_time: $PYTHON missing (run scripts/test.sh once)" >&2; exit 2; }

exec "$PYTHON" - "$ARBITER" "$PYTHON" "$ROOT/tests/apps" "${WORKERS:-64}" "${SCRAPES:-20}" <<'PY'
import os, signal, socket, statistics, subprocess, sys, tempfile, time

arbiter_bin, python, apps, workers, scrapes = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
BOOT_DEADLINE = 300.0  # 2 cores: 64 uvicorn workers importing FastAPI at once take a while


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path, timeout=10.0):
    """One request on a fresh connection; returns (seconds, status line, body bytes)."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
    elapsed = time.perf_counter() - started
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    return elapsed, head.split(b"\r\n", 1)[0].decode(), body


def ready_count(port):
    try:
        _, status, body = get(port, "/metrics", timeout=5)
    except OSError:
        return -1
    for line in body.decode().splitlines():
        if line.startswith('arbiter_workers{state="ready"} '):
            return int(float(line.split()[-1]))
    return -1


workdir = tempfile.mkdtemp(prefix="arbiter-bench-metrics-", dir="/tmp")
app_port, metrics_port = free_port(), free_port()
log = open(os.path.join(workdir, "arbiter.log"), "wb")
env = {k: v for k, v in os.environ.items() if not k.startswith(("LISTEN_", "NOTIFY_", "WATCHDOG_"))}
proc = subprocess.Popen(
    [arbiter_bin, "run", "-w", str(workers), "-b", f"127.0.0.1:{app_port}", "--metrics", f"127.0.0.1:{metrics_port}",
     "--boot-timeout", "180", "--python", python, "--chdir", apps,
     "--control", os.path.join(workdir, "control.sock"), "--no-access-log", "hello:app"],
    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
try:
    started = time.monotonic()
    ready = -1
    while time.monotonic() - started < BOOT_DEADLINE:
        if proc.poll() is not None:
            sys.exit(f"metrics_time: the arbiter exited with {proc.returncode}; see {log.name}")
        ready = ready_count(metrics_port)
        if ready == workers:
            break
        time.sleep(0.5)
    else:
        sys.exit(f"metrics_time: only {ready}/{workers} workers ready after {BOOT_DEADLINE:.0f}s; see {log.name}")
    boot = time.monotonic() - started
    # Let the boot's CPU storm settle: wait (bounded) until the CPUs were 80% idle over 0.5 s.
    def idle_total():
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return fields[3] + fields[4], sum(fields)
    settle_deadline, before = time.monotonic() + 20, idle_total()
    while time.monotonic() < settle_deadline:
        time.sleep(0.5)  # the sampling window
        after = idle_total()
        if after[1] > before[1] and (after[0] - before[0]) / (after[1] - before[1]) >= 0.8:
            break
        before = after

    get(metrics_port, "/metrics")  # warm-up
    samples, size = [], 0
    for _ in range(scrapes):
        elapsed, status, body = get(metrics_port, "/metrics")
        assert status.startswith("HTTP/1.1 200"), status
        samples.append(elapsed)
        size = len(body)
    health = [get(metrics_port, "/healthz")[0] for _ in range(scrapes)]
    ms = lambda seconds: f"{seconds * 1000:.2f} ms"
    print(f"/metrics with {workers} ready workers (booted in {boot:.1f}s), {scrapes} scrapes, page {size} bytes, "
          f"{len(body.splitlines())} lines")
    print(f"  median {ms(statistics.median(samples))}  min {ms(min(samples))}  max {ms(max(samples))}  "
          f"p90 {ms(sorted(samples)[int(0.9 * (len(samples) - 1))])}")
    print(f"/healthz for comparison: median {ms(statistics.median(health))}")
finally:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # quick stop
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    log.close()
PY
