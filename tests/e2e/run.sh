#!/bin/bash
# End-to-end tests of arbiter in production shape: the Debian package installed in a Debian 12 root
# booted with systemd-nspawn (real systemd 252 as PID 1), the example FastAPI app in a venv, nginx
# with TLS in front, and two nodes behind HAProxy and behind an nginx upstream.
#
#   sudo tests/e2e/run.sh            # last line: "N passed, N failed"; exit status 1 if any failed
#
# Steps: build the .deb (CPack) -> build or reuse the cached root (rootfs.sh) -> mount a throwaway
# overlay on it -> boot it with its own network namespace (--private-network: all traffic stays on the
# container's loopback) -> install the .deb with apt -> run the checks below through nsenter.
# Every wait is a poll with a deadline, never a fixed sleep. Figures (start-up time, exposure score,
# failed requests per load-balancer scenario) are printed as "figure: ..." lines and written to
# $ARBITER_E2E_OUT/figures.txt.
#
# Environment: ARBITER_E2E_CACHE (root cache, default /var/cache/arbiter-e2e), ARBITER_E2E_OUT (logs
# and figures, default .cache/e2e), ARBITER_E2E_KEEP=1 (leave the container running at the end for
# debugging; it prints how to enter it).
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
E2E="$REPO/tests/e2e"
OUT="${ARBITER_E2E_OUT:-$REPO/.cache/e2e}"
BUILD="$REPO/.cache/e2e-build-deb"
PASSED=0
FAILED=0
CT_PID=
NSPAWN_PID=
MERGED=
RUN_DIR=

log() { printf '%s\n' "$*" >&2; }
figure() { printf 'figure: %s\n' "$*" | tee -a "$OUT/figures.txt" >&2; }
pass() { PASSED=$((PASSED + 1)); printf 'PASS %s\n' "$1" >&2; }
fail() { FAILED=$((FAILED + 1)); printf 'FAIL %s%s\n' "$1" "${2:+: $2}" >&2; }
finish() {
    printf '%s passed, %s failed\n' "$PASSED" "$FAILED"
    [ "$FAILED" -eq 0 ]
    exit $?
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# ---- the container ----

# Run a command inside the booted container (its mount, pid, network, uts and ipc namespaces), with a
# clean environment.
ct() {
    nsenter --target "$CT_PID" --mount --uts --ipc --net --pid --root --wd -- \
        /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}
ct_sh() { ct /bin/sh -c "$1"; }

# wait_until SECONDS COMMAND...: poll COMMAND every 0.1 s until it succeeds; 1 after the deadline.
wait_until() {
    local deadline=$(($(now_ms) + $1 * 1000))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$(now_ms)" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

stop_container() {
    if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
        # SIGTERM to nspawn asks the container's systemd to power off cleanly.
        kill -TERM "$NSPAWN_PID" 2>/dev/null
        (sleep 30 && kill -KILL "$NSPAWN_PID" 2>/dev/null) &
        local killer=$!
        wait "$NSPAWN_PID" 2>/dev/null
        kill "$killer" 2>/dev/null
    fi
    NSPAWN_PID=
    if [ -n "$MERGED" ] && mountpoint -q "$MERGED"; then
        umount "$MERGED" || umount -l "$MERGED"
    fi
    [ -z "$RUN_DIR" ] || rm -rf --one-file-system "$RUN_DIR"
}

cleanup() {
    if [ "${ARBITER_E2E_KEEP:-}" = 1 ] && [ -n "$CT_PID" ]; then
        log "container kept running: nsenter -t $CT_PID -m -u -i -n -p -r -w bash   (stop: kill $NSPAWN_PID)"
        return
    fi
    stop_container
}
trap cleanup EXIT

find_container_init() {
    local child
    for child in $(pgrep -P "$NSPAWN_PID"); do
        if [ "$(readlink "/proc/$child/ns/pid")" != "$(readlink /proc/self/ns/pid)" ]; then
            CT_PID="$child"
            return 0
        fi
    done
    return 1
}

boot_container() {
    local rootfs="$1"
    RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/arbiter-e2e.XXXXXX")"
    mkdir -p "$RUN_DIR/upper" "$RUN_DIR/work" "$RUN_DIR/merged"
    MERGED="$RUN_DIR/merged"
    mount -t overlay overlay -o "lowerdir=$rootfs,upperdir=$RUN_DIR/upper,workdir=$RUN_DIR/work" "$MERGED" \
        || { log "cannot mount an overlay on $rootfs (is overlayfs available?)"; return 1; }

    # What the tests need inside, copied before the boot.
    mkdir -p "$MERGED/root/e2e" "$MERGED/srv/app"
    cp "$DEB" "$MERGED/root/e2e/"
    cp -r "$REPO/examples" "$MERGED/root/e2e/examples"
    cp -r "$REPO/examples/app" "$MERGED/srv/app/app"
    find "$MERGED/srv/app/app" -name __pycache__ -prune -exec rm -rf {} +
    install -m 755 "$E2E/load.py" "$MERGED/usr/local/bin/e2e-load"

    systemd-nspawn --boot --register=no --keep-unit --private-network --quiet \
        --machine=arbiter-e2e -D "$MERGED" >"$OUT/console.log" 2>&1 </dev/null &
    NSPAWN_PID=$!
    wait_until 30 find_container_init || { log "the container's init did not start; see $OUT/console.log"; return 1; }
    find_container_init
    # systemd reports "running" (or "degraded" if some unrelated unit failed) once booted.
    wait_until 90 ct_sh 'systemctl is-system-running | grep -qE "^(running|degraded)$"' || {
        log "the container did not finish booting: $(ct systemctl is-system-running 2>&1)"
        ct systemctl --failed --no-pager >&2
        return 1
    }
    [ "$(ct systemctl is-system-running)" = running ] \
        || log "note: container boot state is $(ct systemctl is-system-running): $(ct systemctl --failed --plain --no-legend --no-pager | awk '{print $1}' | tr '\n' ' ')"
}

# ---- helpers for the app ----

# app_get URL_PATH [curl options]: GET through the socket-activation socket of arbiter@app.
app_get() {
    local path="$1"
    shift
    ct curl -sS --fail --max-time 5 --unix-socket /run/arbiter/http/app.sock "$@" "http://app$path"
}
status_text() { ct systemctl show -p StatusText --value "$1"; }
main_pid() { ct systemctl show -p MainPID --value "$1"; }
worker_pids() { ct_sh "ps -o pid= --ppid $(main_pid "$1") | tr -d ' ' | sort | tr '\n' ' '"; }

# start_load NAME LOAD_OPTIONS...: e2e-load in the background until stop_load NAME.
start_load() {
    local name="$1"
    shift
    ct rm -f "/run/e2e-stop-$name" "/run/e2e-started-$name" "/run/e2e-progress-$name"
    ct e2e-load --stop-file "/run/e2e-stop-$name" --ready-file "/run/e2e-started-$name" \
        --progress-file "/run/e2e-progress-$name" --duration 120 "$@" \
        >"$OUT/load-$name.json" 2>"$OUT/load-$name.err" &
    eval "LOAD_PID_$name=$!"
    # Under way: a first request has succeeded.
    wait_until 10 ct test -e "/run/e2e-started-$name" || log "load $name: no successful request within 10 s"
}
# load_figure NAME FIELD: one figure of the running load (ok, failed, ok_since_failure, elapsed_s).
load_figure() { ct cat "/run/e2e-progress-$1" 2>/dev/null | json_field "$2"; }
load_at_least() { [ "$(load_figure "$1" "$2")" -ge "$3" ] 2>/dev/null; }
# wait_load NAME FIELD COUNT SECONDS: wait until FIELD of the running load reaches COUNT.
wait_load() {
    wait_until "$4" load_at_least "$1" "$2" "$3" || log "load $1: $2 did not reach $3 within $4 s"
}
# wait_load_more NAME COUNT SECONDS: wait until COUNT more requests have succeeded from now on.
wait_load_more() {
    local now
    now="$(load_figure "$1" ok)"
    wait_load "$1" ok $(( ${now:-0} + $2 )) "$3"
}
# stop_load NAME: stop it, wait for its report, put the report in $LOAD_RESULT (not in a subshell:
# only this shell can wait for the load's process).
stop_load() {
    local name="$1" pid_var="LOAD_PID_$1"
    ct touch "/run/e2e-stop-$name"
    wait "${!pid_var}"
    LOAD_RESULT="$(cat "$OUT/load-$name.json")"
    [ -n "$LOAD_RESULT" ] || LOAD_RESULT='{"requests": 0, "failed": null, "error": "no report"}'
}
json_field() { python3 -c 'import json,sys; v=json.load(sys.stdin).get(sys.argv[1]); print("" if v is None else json.dumps(v) if isinstance(v, (dict, list)) else v)' "$1"; }
ctl_status() { ct arbiter ctl --control "/run/arbiter/$1/$1.sock" --json status; }

# ---- the checks ----

test_deb_installs() {
    if ct apt-get install -y -q "/root/e2e/$(basename "$DEB")" >"$OUT/apt.log" 2>&1 \
        && ct arbiter --version | grep -q '^arbiter ' \
        && ct test -f /usr/share/man/man1/arbiter.1.gz \
        && ct test -f /usr/share/arbiter/python/arbiter_worker/__main__.py \
        && ct systemctl cat arbiter@app.service >/dev/null 2>&1; then
        pass "deb: apt install ./$(basename "$DEB") installs the binary, the shim, the man page and the units"
    else
        fail "deb: apt install" "see $OUT/apt.log"
        return 1
    fi
}

configure_app() {
    ct install -m 644 /root/e2e/examples/systemd/app.env /etc/arbiter/app.env
    # The example's options with 2 workers (2 CPUs here) and a short graceful timeout for the tests.
    ct_sh "sed -e 's/\"workers\": 4/\"workers\": 2/' -e 's/\"graceful-timeout\": 30/\"graceful-timeout\": 10/' \
        /root/e2e/examples/systemd/app.json > /etc/arbiter/app.json"
    ct systemctl start arbiter@app.socket
}

test_exposure_score() {
    local offline online
    offline="$(ct systemd-analyze security --offline=true /usr/lib/systemd/system/arbiter@.service 2>&1 \
        | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')"
    online="$(ct systemd-analyze security arbiter@app.service 2>&1 \
        | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')"
    figure "exposure score of arbiter@.service: ${offline:-?} (--offline=true), ${online:-?} (loaded arbiter@app.service)"
    if [ -n "$offline" ] && awk -v s="$offline" 'BEGIN { exit !(s <= 2.0) }' \
        && { [ -z "$online" ] || awk -v s="$online" 'BEGIN { exit !(s <= 2.0) }'; }; then
        pass "unit: systemd-analyze security scores arbiter@.service $offline (<= 2.0)"
    else
        fail "unit: systemd-analyze security" "score '${offline}' / '${online}' (want <= 2.0)"
    fi
}

test_start_returns_when_ready() {
    local times=() i t0 t1 ok=1 reason=""
    for i in 1 2 3 4 5; do
        ct systemctl stop arbiter@app.service 2>/dev/null
        t0=$(now_ms)
        if ! ct systemctl start arbiter@app.service; then
            ok=0 reason="systemctl start failed (run $i)"
            ct journalctl -u arbiter@app.service -n 40 --no-pager >&2
            break
        fi
        t1=$(now_ms)
        times+=($((t1 - t0)))
        # Right after start returns: every worker is ready, and a request is answered at once.
        if ! status_text arbiter@app.service | grep -q '^2/2 workers ready'; then
            ok=0 reason="status after start: '$(status_text arbiter@app.service)'"
            break
        fi
        if ! app_get /healthz --max-time 1 >/dev/null; then
            ok=0 reason="no answer within 1 s right after systemctl start returned (run $i)"
            break
        fi
    done
    if [ "${#times[@]}" -gt 0 ]; then
        figure "systemctl start to ready, 2 workers: median $(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((${#times[@]} + 1) / 2))p") ms (runs: ${times[*]} ms)"
    fi
    if [ "$ok" = 1 ]; then
        pass "systemd: systemctl start returns once all workers are ready; the app answers at once (5 runs)"
    else
        fail "systemd: systemctl start returns when ready" "$reason"
    fi
}

test_worker_logs_in_journal() {
    if wait_until 10 ct_sh "journalctl -u arbiter@app.service --no-pager -o cat | grep -q '^\[worker 1 pid [0-9]*\] .*startup: worker 1'" \
        && wait_until 10 ct_sh "journalctl -u arbiter@app.service --no-pager -o cat | grep -q 'GET /healthz'"; then
        pass "systemd: worker logs (lifespan and access lines, tagged [worker ID pid PID]) are in the journal"
    else
        fail "systemd: worker logs in the journal" "no '[worker 1 pid …] … startup' or access line in journalctl -u arbiter@app"
    fi
}

test_reload_under_load() {
    local before gen_before t0 t1 t_drained result failed requests status_json
    before="$(worker_pids arbiter@app.service)"
    gen_before="$(ctl_status app | json_field generation)"
    start_load reload --url http://app/ --unix /run/arbiter/http/app.sock -c 4 --interval 0.005
    t0=$(now_ms)
    if ! ct systemctl reload arbiter@app.service 2>"$OUT/reload.err"; then
        stop_load reload
        fail "systemd: systemctl reload" "$(cat "$OUT/reload.err")"
        return
    fi
    t1=$(now_ms)
    # When `systemctl reload` returns, every serving worker is a new one, ready.
    status_json="$(ctl_status app)"
    local summary
    summary="$(python3 -c '
import json, sys
s = json.load(sys.stdin); gen = int(sys.argv[1]) + 1
serving = [w for w in s["workers"] if w["state"] != "draining"]
ok = s["generation"] == gen and s["ready_workers"] == 2 and len(serving) == 2 \
    and all(w["state"] == "ready" and w["generation"] == gen for w in serving)
print(("ok" if ok else "bad"), "generation", s["generation"], [(w["pid"], w["state"], w["generation"]) for w in s["workers"]])
' "$gen_before" <<<"$status_json")"
    # The old workers finish draining shortly after (within --graceful-timeout).
    local old_gone=1 pid
    for pid in $before; do
        wait_until 15 ct_sh "! kill -0 $pid 2>/dev/null" || old_gone=0
    done
    t_drained=$(now_ms)
    stop_load reload
    result="$LOAD_RESULT"
    failed="$(json_field failed <<<"$result")"
    requests="$(json_field requests <<<"$result")"
    figure "systemctl reload (rolling, 2 workers) returned after $((t1 - t0)) ms, last old worker gone after $((t_drained - t0)) ms; under load: $requests requests, $failed failed"
    if [ "$failed" = 0 ] && [ "${requests:-0}" -gt 0 ] && [ "${summary%% *}" = ok ] && [ "$old_gone" = 1 ]; then
        pass "systemd: systemctl reload returns once every worker is replaced and ready; 0 of $requests requests failed under load"
    else
        fail "systemd: systemctl reload under load" "failed=$failed of $requests; at return: $summary; old workers [$before] gone: $old_gone; $result"
    fi
}

test_watchdog_restarts_stopped_arbiter() {
    local pid t0
    # The test before may have restarted the unit: between two instances MainPID is 0, and
    # `kill -STOP 0` would stop this script's own process group (nsenter keeps the host's).
    wait_until 30 ct_sh "[ \"\$(systemctl show -p MainPID --value arbiter@app.service)\" -gt 1 ] \
            && systemctl show -p StatusText --value arbiter@app.service | grep -q '^2/2 workers ready'" || true
    pid="$(main_pid arbiter@app.service)"
    if ! [ "${pid:-0}" -gt 1 ] 2>/dev/null; then
        fail "systemd: watchdog restart" "arbiter@app.service has no main process to stop (MainPID '$pid')"
        return
    fi
    local timeouts_before elapsed
    timeouts_before="$(ct_sh "journalctl -u arbiter@app.service --no-pager -o cat | grep -ci 'watchdog timeout'")"
    t0=$(now_ms)
    ct kill -STOP "$pid"
    # WatchdogSec=10, then SIGABRT, TimeoutAbortSec=5 -> SIGKILL, RestartSec=1, then the workers boot.
    # The arbiter pings every 5 s, so the watchdog fires 5 to 10 s after the stop: sooner means the
    # pings had already stopped (as they did for one interval after each in-place upgrade).
    if wait_until 40 ct_sh "[ \"\$(systemctl show -p MainPID --value arbiter@app.service)\" != $pid ] \
            && systemctl show -p StatusText --value arbiter@app.service | grep -q '^2/2 workers ready'" \
        && app_get /healthz >/dev/null \
        && [ "$(ct_sh "journalctl -u arbiter@app.service --no-pager -o cat | grep -ci 'watchdog timeout'")" -gt "${timeouts_before:-0}" ] \
        && elapsed=$(($(now_ms) - t0)) && [ "$elapsed" -ge 5000 ]; then
        figure "watchdog: SIGSTOPped arbiter replaced and ready after $elapsed ms (WatchdogSec=10)"
        pass "systemd: a SIGSTOPped arbiter is killed by the watchdog (5-10 s after its last ping) and restarted"
    else
        fail "systemd: watchdog restart" "after ${elapsed:-?} ms (expected 5,000 or more): MainPID $(main_pid arbiter@app.service) (was $pid), status '$(status_text arbiter@app.service)'"
        ct kill -CONT "$pid" 2>/dev/null
    fi
}

test_socket_activation() {
    local t0 body
    ct systemctl stop arbiter@app.service 2>/dev/null
    if [ "$(ct systemctl is-active arbiter@app.service)" = active ] \
        || [ "$(ct systemctl is-active arbiter@app.socket)" != active ]; then
        fail "systemd: socket activation" "precondition: service should be stopped, socket listening"
        return
    fi
    t0=$(now_ms)
    body="$(app_get / --max-time 60)"
    # The first ready worker answers while the service still waits for the second one (activating).
    if grep -q 'hello from arbiter' <<<"$body" && wait_until 30 ct_sh '[ "$(systemctl is-active arbiter@app.service)" = active ]'; then
        figure "socket activation: first connection answered after $(($(now_ms) - t0)) ms (service started by it)"
        pass "systemd: the first connection to arbiter@app.socket starts the service and is answered"
    else
        fail "systemd: socket activation" "got '$body', service $(ct systemctl is-active arbiter@app.service)"
    fi
}

test_stop_leaves_no_process() {
    ct systemctl stop arbiter@app.service 2>/dev/null
    local left
    left="$(ct_sh "ps -eo pid=,args= | grep -E '(/usr/bin/arbiter|arbiter_worker)' | grep -v grep")"
    if [ -z "$left" ] && [ "$(ct systemctl is-active arbiter@app.service)" = inactive ] \
        && [ "$(ct systemctl show -p Result --value arbiter@app.service)" = success ]; then
        pass "systemd: systemctl stop ends the arbiter and every worker cleanly (Result=success)"
    else
        fail "systemd: systemctl stop" "left: [$left], state $(ct systemctl is-active arbiter@app.service), result $(ct systemctl show -p Result --value arbiter@app.service)"
    fi
}

test_nginx_tls() {
    ct mkdir -p /etc/ssl/arbiter-e2e
    ct openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=app.example.com \
        -keyout /etc/ssl/arbiter-e2e/privkey.pem -out /etc/ssl/arbiter-e2e/fullchain.pem >/dev/null 2>&1
    ct_sh "sed 's|/etc/letsencrypt/live/app.example.com/|/etc/ssl/arbiter-e2e/|' /root/e2e/examples/nginx/app.conf \
        > /etc/nginx/sites-available/app.conf && ln -sf ../sites-available/app.conf /etc/nginx/sites-enabled/app.conf \
        && rm -f /etc/nginx/sites-enabled/default"
    if ! ct nginx -t >"$OUT/nginx-t.log" 2>&1 || ! ct systemctl restart nginx.service; then
        fail "nginx: TLS site" "nginx -t / start failed: $(tail -3 "$OUT/nginx-t.log")"
        return
    fi
    ct systemctl start arbiter@app.service
    local headers body redirect
    # From 127.0.0.2, so the app's access log shows whether it saw the client's address through
    # X-Forwarded-For (with a UNIX socket it has no peer address of its own).
    headers="$(ct curl -sS -k --max-time 5 --interface 127.0.0.2 -D - -o /tmp/body \
        --resolve app.example.com:443:127.0.0.1 https://app.example.com/)"
    body="$(ct cat /tmp/body)"
    redirect="$(ct curl -sS --max-time 5 -o /dev/null -w '%{http_code} %{redirect_url}' \
        --resolve app.example.com:80:127.0.0.1 http://app.example.com/x)"
    local missing=""
    for h in strict-transport-security x-content-type-options x-frame-options referrer-policy; do
        grep -qi "^$h:" <<<"$headers" || missing+=" $h"
    done
    if grep -q '^HTTP/[0-9.]* 200' <<<"$headers" && grep -q 'hello from arbiter' <<<"$body" && [ -z "$missing" ] \
        && [ "$redirect" = "301 https://app.example.com/x" ]; then
        pass "nginx: TLS site proxies to the arbiter's UNIX socket, with security headers and an HTTP->HTTPS redirect"
    else
        fail "nginx: TLS site" "headers: $(head -1 <<<"$headers"), missing:${missing:-none}, body '$body', redirect '$redirect'"
    fi
    if wait_until 10 ct_sh "journalctl -u arbiter@app.service --no-pager -o cat | grep -q '127.0.0.2:[0-9]* - \"GET / HTTP/1.1\" 200'"; then
        pass "nginx: the app sees the client's address (X-Forwarded-For with --proxy-headers --forwarded-allow-ips)"
    else
        fail "nginx: forwarded client address" "no access line from 127.0.0.2 in the journal"
    fi
}

# Two nodes on one host: arbiter@node1 and arbiter@node2 (2 workers each), each behind its own nginx
# server (127.0.0.1:8201 and :8202, adding "X-Node: nodeN" to responses) and each with the arbiter's
# /healthz on 127.0.0.1:9101/:9102. HAProxy (127.0.0.1:9080) and an nginx upstream (127.0.0.1:9081)
# balance over them with the configurations from examples/lb.
setup_lb() {
    ct systemctl stop arbiter@app.service arbiter@app.socket nginx.service
    local n
    for n in 1 2; do
        ct_sh "cp /etc/arbiter/app.env /etc/arbiter/node$n.env && sed 's|^{|{\n  \"metrics\": \"127.0.0.1:910$n\",|' \
            /etc/arbiter/app.json > /etc/arbiter/node$n.json"
        # A node that is killed stays down until the test brings it back (as a crashed host would).
        ct mkdir -p "/etc/systemd/system/arbiter@node$n.service.d"
        ct_sh "printf '[Service]\nRestart=no\n' > /etc/systemd/system/arbiter@node$n.service.d/e2e.conf"
        ct_sh "cat > /etc/nginx/sites-enabled/node$n.conf <<EOF
upstream node${n}_app { server unix:/run/arbiter/http/node$n.sock; keepalive 16; }
server {
    listen 127.0.0.1:820$n;
    add_header X-Node node$n always;
    location / {
        proxy_pass http://node${n}_app;
        proxy_http_version 1.1;
        proxy_set_header Connection \"\";
        proxy_set_header Host \\\$host;
        proxy_set_header X-Forwarded-For \\\$proxy_add_x_forwarded_for;
    }
}
EOF"
    done
    local lb_nodes='s|10.0.0.11:8080|127.0.0.1:8201|; s|10.0.0.12:8080|127.0.0.1:8202|'
    ct_sh "sed -e '$lb_nodes' -e 's|^\(    bind\) :80$|\1 127.0.0.1:9080|' \
        -e '/server node1/s|port 9100|port 9101|' -e '/server node2/s|port 9100|port 9102|' \
        /root/e2e/examples/lb/haproxy.cfg > /etc/haproxy/haproxy.cfg"
    ct_sh "sed -e '$lb_nodes' -e 's|^    listen 80;|    listen 127.0.0.1:9081;|' /root/e2e/examples/lb/nginx-upstream.conf \
        > /etc/nginx/sites-enabled/lb.conf"
    ct systemctl daemon-reload
    ct systemctl start arbiter@node1.socket arbiter@node2.socket arbiter@node1.service arbiter@node2.service || return 1
    ct haproxy -c -f /etc/haproxy/haproxy.cfg >"$OUT/haproxy-c.log" 2>&1 || { log "$(cat "$OUT/haproxy-c.log")"; return 1; }
    ct nginx -t >"$OUT/nginx-lb-t.log" 2>&1 || { log "$(cat "$OUT/nginx-lb-t.log")"; return 1; }
    ct systemctl start nginx.service haproxy.service || return 1
    # Both balancers see both nodes: responses from node1 and node2 through each.
    local lb
    for lb in 9080 9081; do
        wait_until 20 ct_sh "for i in 1 2 3 4 5 6; do curl -s -D - -o /dev/null http://127.0.0.1:$lb/; done | sort -u | grep -ic '^X-Node: node[12]' | grep -qx 2" \
            || { log "balancer :$lb does not reach both nodes"; return 1; }
    done
}

lb_name() { case "$1" in 9080) echo HAProxy ;; 9081) echo "nginx upstream" ;; esac; }

test_lb_rolling_reload() {
    local lb="$1" result failed requests t0
    start_load "reload$lb" --url "http://127.0.0.1:$lb/" -c 4 --interval 0.01 --count-header X-Node
    wait_load_more "reload$lb" 100 20   # traffic on both nodes before the reload
    t0=$(now_ms)
    ct systemctl reload arbiter@node1.service arbiter@node2.service
    local rc=$?
    local reload_ms=$(($(now_ms) - t0))
    wait_load_more "reload$lb" 100 20   # and on the new workers after it
    stop_load "reload$lb"
    result="$LOAD_RESULT"
    failed="$(json_field failed <<<"$result")"
    requests="$(json_field requests <<<"$result")"
    figure "$(lb_name "$lb"): rolling reload of both nodes ($reload_ms ms) under load: $requests requests, $failed failed $(json_field by_header <<<"$result")"
    if [ "$rc" = 0 ] && [ "$failed" = 0 ] && [ "${requests:-0}" -gt 0 ]; then
        pass "lb $(lb_name "$lb"): rolling reload of both nodes under load fails 0 of $requests requests"
    else
        fail "lb $(lb_name "$lb"): rolling reload" "reload rc=$rc; $result"
    fi
}

test_lb_node_killed_and_back() {
    local lb="$1" result failed requests first last t_kill t_back rejoin
    start_load "kill$lb" --url "http://127.0.0.1:$lb/" -c 4 --interval 0.01 --count-header X-Node
    wait_load_more "kill$lb" 100 20
    t_kill=$(now_ms)
    local kill_at
    kill_at="$(load_figure "kill$lb" elapsed_s)"
    # Hard: nothing listens any more, and SIGKILL to the arbiter and every worker at once (no drain).
    # The socket unit goes first: while it listens, a connection would start the service again at
    # once (socket activation is a recovery of its own, but here the node must stay down).
    ct systemctl stop arbiter@node1.socket
    ct systemctl kill --signal=SIGKILL arbiter@node1.service
    wait_until 10 ct_sh '[ "$(systemctl is-active arbiter@node1.service)" = failed ]' \
        || log "node1: service is $(ct systemctl is-active arbiter@node1.service) after SIGKILL, expected failed"
    # Routed around: 300 more requests answered since the kill, and 300 in a row since the last failure.
    wait_load_more "kill$lb" 300 30
    wait_load "kill$lb" ok_since_failure 300 30
    stop_load "kill$lb"
    result="$LOAD_RESULT"
    failed="$(json_field failed <<<"$result")"
    requests="$(json_field requests <<<"$result")"
    first="$(json_field first_failure_s <<<"$result")"
    last="$(json_field last_failure_s <<<"$result")"
    figure "$(lb_name "$lb"): node1 killed hard under load: $failed of $requests requests failed$([ -n "$first" ] && echo ", failures from ${first}s to ${last}s of the run (kill at ${kill_at}s): $(json_field failures <<<"$result")")"
    local node1_state
    node1_state="$(ct systemctl is-active arbiter@node1.service)"
    # Routed around: node1 stayed down, and the last 5 s of the run had no failure.
    if [ -n "$requests" ] && [ "$node1_state" = failed ] \
        && { [ -z "$last" ] || awk -v l="$last" 'BEGIN { exit !(l < 5.0) }'; }; then
        pass "lb $(lb_name "$lb"): node1 killed hard -> traffic goes to node2 ($failed of $requests failed$([ -n "$last" ] && echo ", none after ${last}s"))"
    else
        fail "lb $(lb_name "$lb"): node killed" "node1 $node1_state; $result"
    fi

    local t_ready
    t_back=$(now_ms)
    ct systemctl start arbiter@node1.socket arbiter@node1.service
    t_ready=$(now_ms)
    if wait_until 30 ct_sh "for i in 1 2 3 4 5 6; do curl -s -D - -o /dev/null http://127.0.0.1:$lb/; done | grep -qi '^X-Node: node1'"; then
        rejoin=$(($(now_ms) - t_back))
        figure "$(lb_name "$lb"): node1 back in rotation $rejoin ms after systemctl start (start returned, workers ready, after $((t_ready - t_back)) ms)"
        pass "lb $(lb_name "$lb"): node1 rejoins after it is started again"
    else
        fail "lb $(lb_name "$lb"): node rejoins" "no response from node1 within 30 s"
    fi
}

# shellcheck source=tests/e2e/upgrade_checks.sh
source "$E2E/upgrade_checks.sh"

# ---- main ----

main() {
    [ "$(id -u)" -eq 0 ] || { log "run as root (systemd-nspawn, mount)"; FAILED=1; finish; }
    mkdir -p "$OUT"
    : >"$OUT/figures.txt"
    # scripts/test.sh's install stage installs these (TEST_PACKAGES).
    for tool in cmake cpack debootstrap systemd-nspawn nsenter dpkg-shlibdeps pgrep mountpoint; do
        command -v "$tool" >/dev/null || { fail "prerequisites" "$tool not found: run scripts/test.sh (its install stage installs it), or apt-get install cmake debootstrap systemd-container util-linux procps dpkg-dev"; finish; }
    done

    log "== building the Debian package"
    if cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
            -DARBITER_TESTS=OFF -DARBITER_RELOCATABLE=ON >"$OUT/deb-build.log" 2>&1 \
        && cmake --build "$BUILD" -j"$(nproc)" >>"$OUT/deb-build.log" 2>&1 \
        && rm -f "$BUILD"/arbiter_*.deb \
        && (cd "$BUILD" && cpack -G DEB) >>"$OUT/deb-build.log" 2>&1; then
        DEB="$(ls "$BUILD"/arbiter_*.deb)"
        figure ".deb size: $(stat -c %s "$DEB") bytes ($(basename "$DEB"))"
        pass "deb: cpack builds $(basename "$DEB")"
    else
        fail "deb: build" "see $OUT/deb-build.log"
        finish
    fi

    log "== the Debian 12 root (cached)"
    local rootfs
    rootfs="$("$E2E/rootfs.sh")" || { fail "rootfs" "debootstrap failed"; finish; }

    log "== booting the container"
    if boot_container "$rootfs"; then
        pass "container: Debian 12 boots with systemd $(ct_sh 'systemctl --version | head -1 | cut -d" " -f2') as PID 1"
    else
        fail "container: boot" "see $OUT/console.log"
        finish
    fi

    log "== systemd"
    test_deb_installs || finish
    configure_app
    test_exposure_score
    test_start_returns_when_ready
    test_worker_logs_in_journal
    test_reload_under_load
    test_upgrade_in_place_under_load
    test_deb_upgrade_keeps_running
    test_restart_keeps_the_socket
    test_watchdog_restarts_stopped_arbiter
    test_socket_activation
    test_stop_leaves_no_process

    log "== nginx with TLS"
    test_nginx_tls

    log "== two nodes behind HAProxy and behind nginx"
    if setup_lb; then
        pass "lb: two nodes (arbiter + nginx each) behind HAProxy :9080 and nginx upstream :9081"
        local lb
        for lb in 9080 9081; do
            test_lb_rolling_reload "$lb"
            test_lb_node_killed_and_back "$lb"
        done
    else
        fail "lb: setup" "see $OUT/*.log"
    fi
    ct journalctl --no-pager -o short-monotonic >"$OUT/journal.txt" 2>&1
    finish
}

main "$@"
