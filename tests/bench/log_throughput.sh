#!/usr/bin/env bash
# Throughput with the access log on, before and after a change to the log path (issue 19: "may not
# fall by more than 3 %"). A benchmark, not a test: it prints figures and never fails on a timing.
#
#   OLD=/path/to/old/arbiter tests/bench/log_throughput.sh          build/arbiter against OLD
#   OLD=... NEW=... ROUNDS=7 SECONDS_PER_ROUND=15 CONNECTIONS=32 WORKERS=2 tests/bench/log_throughput.sh
#   OUTPUT=stderr ...   the log to the arbiter's stderr, a pipe read by cat into a file, instead of --log-file
#
# Each round starts one binary with tests/apps/hello.py and the access log on, waits (bounded) until
# it answers, warms up for 2 s, then runs wrk on loopback for SECONDS_PER_ROUND; rounds alternate
# OLD, NEW, OLD, NEW... so that a noisy neighbour hurts both alike. Prints every round's requests/s,
# the medians and NEW's change against OLD, and the arbiter's own CPU time per request (the cost of
# reading the workers' pipes and writing their lines, steadier than requests/s on a busy machine). Each binary serves with its own worker shim (the one
# its build points at). Needs wrk (apt-get install wrk) and the test venv (.venv).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${ARBITER_TEST_PYTHON:-$ROOT/.venv/bin/python}"
NEW="${NEW:-$ROOT/build/arbiter}"
OLD="${OLD:?set OLD to the arbiter binary to compare with (e.g. a build of main)}"
command -v wrk >/dev/null || { echo "log_throughput: wrk is missing (apt-get install wrk)" >&2; exit 2; }
for binary in "$OLD" "$NEW"; do
    [[ -x "$binary" ]] || { echo "log_throughput: $binary is not an executable arbiter" >&2; exit 2; }
done

exec "$PYTHON" - "$OLD" "$NEW" "$PYTHON" "$ROOT/tests/apps" "${ROUNDS:-5}" "${SECONDS_PER_ROUND:-10}" \
    "${CONNECTIONS:-32}" "${WORKERS:-2}" "${OUTPUT:-file}" <<'PY'
import os, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

old, new, python, apps = sys.argv[1:5]
rounds, seconds, connections, workers, output = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8]), sys.argv[9]
BOOT_DEADLINE = 120.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(port, duration):
    result = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration}s", f"http://127.0.0.1:{port}/"],
                            capture_output=True, text=True, timeout=duration + 30)
    match = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    if not match:
        raise SystemExit(f"log_throughput: wrk printed no Requests/sec:\n{result.stdout}{result.stderr}")
    return float(match.group(1))


def one_round(binary):
    workdir = tempfile.mkdtemp(prefix="arbiter-bench-log-", dir="/tmp")
    port = free_port()
    log_path = os.path.join(workdir, "app.log")
    argv = [binary, "run", "-w", str(workers), "-b", f"127.0.0.1:{port}", "--python", python, "--chdir", apps,
            "--control", os.path.join(workdir, "control.sock"), "--access-log"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LISTEN_", "NOTIFY_", "WATCHDOG_"))}
    sink = None
    if output == "file":
        argv += ["--log-file", log_path]
        proc = subprocess.Popen(argv + ["hello:app"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    else:  # stderr: a pipe, read by cat into the file
        sink = open(log_path, "wb")
        cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=sink)
        proc = subprocess.Popen(argv + ["hello:app"], stdin=subprocess.DEVNULL, stdout=cat.stdin, stderr=cat.stdin,
                                env=env, start_new_session=True)
        cat.stdin.close()
    try:
        deadline = time.monotonic() + BOOT_DEADLINE
        while not answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"log_throughput: {binary} did not serve (exit {proc.poll()})")
            time.sleep(0.1)
        time.sleep(1.0)  # the other workers finish booting (bounded: -w is small)
        wrk(port, 2)     # warm-up
        cpu_before = cpu_seconds(proc.pid)
        rps = wrk(port, seconds)
        # The supervisor's own CPU per request: what reading the workers' pipes and writing costs.
        return rps, (cpu_seconds(proc.pid) - cpu_before) / (rps * seconds) * 1e6
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if sink:
            cat.wait(timeout=30)
            sink.close()
        shutil.rmtree(workdir, ignore_errors=True)


figures = {"old": [], "new": []}
cpu = {"old": [], "new": []}
for r in range(rounds):
    for name, binary in (("old", old), ("new", new)):
        rps, us = one_round(binary)
        figures[name].append(rps)
        cpu[name].append(us)
        print(f"round {r + 1}/{rounds} {name}: {rps:9.1f} requests/s, arbiter CPU {us:6.2f} us/request", flush=True)
old_median, new_median = statistics.median(figures["old"]), statistics.median(figures["new"])
print(f"access log to {'--log-file' if output == 'file' else 'stderr (a pipe)'}, -w {workers}, wrk -c{connections}, "
      f"{rounds} rounds of {seconds} s")
print(f"old {old}: median {old_median:.1f} requests/s  ({', '.join(f'{x:.0f}' for x in figures['old'])})")
print(f"new {new}: median {new_median:.1f} requests/s  ({', '.join(f'{x:.0f}' for x in figures['new'])})")
print(f"change: {100.0 * (new_median - old_median) / old_median:+.1f} %")
print(f"arbiter CPU per request, median: old {statistics.median(cpu['old']):.2f} us, new {statistics.median(cpu['new']):.2f} us")
PY
