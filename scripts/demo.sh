#!/usr/bin/env bash
# Fresh Debian 12 → the example FastAPI app served by arbiter with 2 workers on 127.0.0.1:8000.
# Safe to run again: it installs and builds only what is missing or changed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"

BIND="${DEMO_BIND:-127.0.0.1:8000}"

ensure_apt_packages "${BUILD_PACKAGES[@]}"
ensure_venv "$REPO/examples/requirements.txt"
build_tree build

cat >&2 <<MESSAGE

  arbiter is starting the example app (examples/app/main.py) with 2 workers.

  Try:   curl http://$BIND/            (run it a few times: "pid" changes between workers)
         curl 'http://$BIND/slow?ms=2000'
         open http://$BIND/docs
  Stop:  Ctrl-C (quick stop), or kill -TERM <arbiter pid> (graceful: in-flight requests finish)

MESSAGE
exec "$REPO/build/arbiter" run -w 2 -b "$BIND" --python "$VENV/bin/python" --chdir "$REPO/examples" app.main:app
