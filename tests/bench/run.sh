#!/usr/bin/env bash
# arbiter benchmarks side by side with gunicorn, uvicorn and granian, in one invocation.
#
#   tests/bench/run.sh            full run (~25 min on 2 cores): docs/benchmarks/{results.md,chart.png,raw.json}
#   tests/bench/run.sh --smoke    every scenario once, short (~1-2 min; peers only in the speed test): .cache/bench-smoke/
#   tests/bench/run.sh preload    the fork server (--preload) with a big app vs gunicorn --preload (~5 min):
#                                 docs/benchmarks/preload.{md,json}
#   tests/bench/run.sh preload-ml the fork server with a numpy + pandas + scikit-learn app (128 MiB at import)
#                                 vs gunicorn --preload (~6 min): docs/benchmarks/preload-ml.{md,json}
#   tests/bench/run.sh balance    even accepts vs the kernel's and gunicorn's, and --autoscale on a step load
#                                 (~30 min): docs/benchmarks/balance.{md,json,png}; with --smoke ~3 min into
#                                 .cache/bench-smoke/
#   extra flags go to bench.py:   --servers arbiter,uvicorn  --only speed,failures  --rounds 5  --rate 500
#
# It installs what it needs: wrk (Debian), vegeta (open-loop constant-rate client, through the Go
# module proxy), a venv .cache/bench-venv with the newest gunicorn, uvicorn-worker, uvicorn[standard],
# granian, fastapi and matplotlib from PyPI; and builds build/arbiter if it is missing.
# Benchmarks never fail on a timing: they print figures. Everything runs on 127.0.0.1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
SMOKE=0
for arg in "$@"; do [[ "$arg" == "--smoke" ]] && SMOKE=1; done

CACHE="$ROOT/.cache"
VENV="$CACHE/bench-venv"
mkdir -p "$CACHE"

# -- tools
if ! command -v wrk >/dev/null; then
    apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
# wrk2 (the coordinated-omission-correct wrk) is not packaged for Debian 12; vegeta is an open-loop
# constant-rate client: it sends on schedule whatever the server does, and we take every latency.
VEGETA="$CACHE/go-bin/vegeta"
VEGETA_VERSION=v12.13.0
export BENCH_VEGETA_VERSION="$VEGETA_VERSION"
if [[ ! -x "$VEGETA" ]] && [[ "${1:-}" != preload* ]]; then   # the preload benchmarks do not use it
    if command -v vegeta >/dev/null; then
        VEGETA="$(command -v vegeta)"
    else
        command -v go >/dev/null || PATH="$PATH:/usr/local/go/bin"
        GOBIN="$CACHE/go-bin" go install "github.com/tsenart/vegeta/v12@$VEGETA_VERSION"
    fi
fi

# -- the venv: newest releases, reinstalled when older than a day (so "newest" stays true)
if [[ ! -x "$VENV/bin/python" ]] || [[ -n "$(find "$VENV/.stamp" -mmin +1440 2>/dev/null)" ]] || [[ ! -e "$VENV/.stamp" ]]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    # gunicorn_h1c: gunicorn's optional C parser (its [fast] extra), used by the native -k asgi worker
    "$VENV/bin/pip" install -q --upgrade gunicorn gunicorn_h1c uvicorn-worker 'uvicorn[standard]' granian fastapi matplotlib
    touch "$VENV/.stamp"
fi

# -- arbiter: our own build of the current tree (not build/, which tests may be rebuilding meanwhile)
ARBITER_BUILD="$CACHE/bench-build"
cmake -S "$ROOT" -B "$ARBITER_BUILD" -DARBITER_TESTS=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$ARBITER_BUILD" -j"$(nproc)" >/dev/null

if [[ "${1:-}" == preload-ml ]]; then
    shift
    # The real data-science app's packages (tests/apps/real/ml_app.py), newest from PyPI, into the same venv:
    # gunicorn --preload imports the app in its own interpreter.
    "$VENV/bin/python" -c 'import numpy, pandas, sklearn' 2>/dev/null \
        || "$VENV/bin/pip" install -q --upgrade numpy pandas scikit-learn
    exec "$VENV/bin/python" "$ROOT/tests/bench/preload_ml.py" --arbiter "$ARBITER_BUILD/arbiter" --python "$VENV/bin/python" \
        --gunicorn "$VENV/bin/gunicorn" --out "$ROOT/docs/benchmarks" "$@"
fi
if [[ "${1:-}" == preload ]]; then
    shift
    exec "$VENV/bin/python" "$ROOT/tests/bench/preload.py" --arbiter "$ARBITER_BUILD/arbiter" --python "$VENV/bin/python" \
        --gunicorn "$VENV/bin/gunicorn" --out "$ROOT/docs/benchmarks" "$@"
fi
if [[ $SMOKE == 1 ]]; then OUT="$CACHE/bench-smoke"; else OUT="$ROOT/docs/benchmarks"; fi
mkdir -p "$OUT"
if [[ "${1:-}" == balance ]]; then
    shift
    export BENCH_COMMAND="tests/bench/run.sh balance${*:+ $*}"
    exec "$VENV/bin/python" "$ROOT/tests/bench/balance.py" --venv "$VENV" --arbiter "$ARBITER_BUILD/arbiter" \
        --vegeta "$VEGETA" --out "$OUT" "$@"
fi
export BENCH_COMMAND="tests/bench/run.sh${*:+ $*}"
"$VENV/bin/python" "$ROOT/tests/bench/bench.py" --venv "$VENV" --arbiter "$ARBITER_BUILD/arbiter" \
    --vegeta "$VEGETA" --out "$OUT" "$@"
# --reuse-port scale-down again with net.ipv4.tcp_migrate_req=1 (the kernel moves connections queued on
# a closing SO_REUSEPORT listener to the others). Set in a private network namespace so the host's
# setting is left alone; its loopback is private too.
if [[ $SMOKE == 0 ]] && command -v unshare >/dev/null && command -v ip >/dev/null \
        && [[ -e /proc/sys/net/ipv4/tcp_migrate_req ]] && [[ ! " $* " =~ " --servers " ]] && [[ ! " $* " =~ " --only " ]]; then
    unshare -n bash -c 'ip link set lo up && sysctl -qw net.ipv4.tcp_migrate_req=1 && exec "$@"' _ \
        "$VENV/bin/python" "$ROOT/tests/bench/bench.py" --venv "$VENV" --arbiter "$ARBITER_BUILD/arbiter" \
        --vegeta "$VEGETA" --out "$OUT" --only failures --servers arbiter-reuseport --tag migrate \
        || echo "supplementary tcp_migrate_req=1 run failed (unshare -n needs root)"
fi
"$VENV/bin/python" "$ROOT/tests/bench/report.py" "$OUT"
echo "results: $OUT/results.md  chart: $OUT/chart.png"
