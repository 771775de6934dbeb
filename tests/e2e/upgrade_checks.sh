# upgrade_checks.sh - e2e checks of the in-place upgrade and of systemd's fd store; sourced by run.sh
# (uses its ct, start_load, stop_load, figure, pass, fail helpers) and run in the booted container.

# A new build of the installed binary, put in place as a package manager does (write, then rename).
install_new_build() {
    ct_sh "cp /usr/bin/arbiter /usr/bin/.arbiter.new && printf 'e2e build %s' '$1' >> /usr/bin/.arbiter.new \
        && mv /usr/bin/.arbiter.new /usr/bin/arbiter"
}

# failed and refused counts of a load report
load_failed() { json_field failed <<<"$1"; }
load_refused() { python3 -c 'import json,sys; f=json.load(sys.stdin).get("failures") or {}; print(sum(v for k,v in f.items() if "efused" in k))' <<<"$1"; }

test_upgrade_in_place_under_load() {
    local main_before main_after workers_before workers_after t0 t1 build_before status result failed requests
    main_before="$(main_pid arbiter@app.service)"
    workers_before="$(worker_pids arbiter@app.service)"
    build_before="$(ctl_status app | json_field build)"
    start_load upgrade --url http://app/ --unix /run/arbiter/http/app.sock -c 4 --interval 0.005
    wait_load_more upgrade 200 20
    install_new_build 1
    t0=$(now_ms)
    if ! ct arbiter ctl --control /run/arbiter/app/app.sock upgrade >"$OUT/upgrade.out" 2>&1; then
        stop_load upgrade
        fail "upgrade: ctl upgrade under systemd" "$(cat "$OUT/upgrade.out")"
        return
    fi
    t1=$(now_ms)
    wait_load_more upgrade 200 20
    stop_load upgrade
    result="$LOAD_RESULT"
    failed="$(load_failed "$result")"
    requests="$(json_field requests <<<"$result")"
    main_after="$(main_pid arbiter@app.service)"
    workers_after="$(worker_pids arbiter@app.service)"
    status="$(ctl_status app)"
    figure "ctl upgrade under systemd: $((t1 - t0)) ms from the command to the new image's READY=1; MainPID $main_before -> $main_after; workers [$workers_before] -> [$workers_after]; under load $requests requests, $failed failed, $(load_refused "$result") refused"
    if [ "$main_before" = "$main_after" ] && [ "$workers_before" = "$workers_after" ] && [ "$failed" = 0 ] \
        && [ "${requests:-0}" -gt 0 ] && ct systemctl is-active -q arbiter@app.service \
        && [ "$(json_field upgrades <<<"$status")" -ge 1 ] && [ "$(json_field build <<<"$status")" != "$build_before" ]; then
        pass "upgrade: ctl upgrade keeps MainPID $main_after, the unit active and every worker; 0 of $requests requests failed"
    else
        fail "upgrade: ctl upgrade under load" "MainPID $main_before->$main_after, workers [$workers_before]->[$workers_after], $result, status $(json_field state <<<"$status")"
    fi
}

# A package upgrade of a running instance: postinst upgrades it in place, nothing restarts.
test_deb_upgrade_keeps_running() {
    local main_before workers_before upgrades_before main_after workers_after upgrades_after
    main_before="$(main_pid arbiter@app.service)"
    workers_before="$(worker_pids arbiter@app.service)"
    upgrades_before="$(ctl_status app | json_field upgrades)"
    if ! ct apt-get install -y -q --reinstall "/root/e2e/$(basename "$DEB")" >"$OUT/apt-upgrade.log" 2>&1; then
        fail "upgrade: apt reinstall of the package" "see $OUT/apt-upgrade.log"
        return
    fi
    main_after="$(main_pid arbiter@app.service)"
    workers_after="$(worker_pids arbiter@app.service)"
    upgrades_after="$(ctl_status app | json_field upgrades)"
    figure "package upgrade of a running instance: MainPID $main_before -> $main_after, workers [$workers_before] -> [$workers_after], upgrades $upgrades_before -> $upgrades_after"
    if [ "$main_before" = "$main_after" ] && [ "$workers_before" = "$workers_after" ] \
        && [ "$upgrades_after" -gt "$upgrades_before" ] && ct systemctl is-active -q arbiter@app.service; then
        pass "upgrade: a .deb upgrade upgrades the running arbiter@app in place (postinst); nothing restarts"
    else
        fail "upgrade: .deb upgrade of a running instance" "MainPID $main_before->$main_after, upgrades $upgrades_before->$upgrades_after; $(tail -5 "$OUT/apt-upgrade.log")"
    fi
}

# arbiter@store binds 127.0.0.1:8301 itself (no .socket unit); the shipped unit keeps its listeners in
# systemd's fd store, so `systemctl restart` never closes the socket: clients that connect meanwhile
# wait in its queue and are served by the new instance.
test_restart_keeps_the_socket() {
    local t0 t1 result failed requests refused
    ct_sh "sed -e 's/\"workers\": 4/\"workers\": 2/' -e 's/\"graceful-timeout\": 30/\"graceful-timeout\": 10/' \
        /root/e2e/examples/systemd/app.json | python3 -c 'import json,sys; c=json.load(sys.stdin); c[\"bind\"]=[\"127.0.0.1:8301\"]; print(json.dumps(c))' \
        > /etc/arbiter/store.json && cp /etc/arbiter/app.env /etc/arbiter/store.env"
    if ! ct systemctl start arbiter@store.service; then
        fail "fd store: start arbiter@store" "$(ct journalctl -u arbiter@store -n 20 --no-pager)"
        return
    fi
    start_load restart --url http://127.0.0.1:8301/ -c 4 --interval 0.005 --timeout 30
    wait_load_more restart 200 20
    t0=$(now_ms)
    ct systemctl restart arbiter@store.service
    t1=$(now_ms)
    wait_load_more restart 200 30
    stop_load restart
    result="$LOAD_RESULT"
    failed="$(load_failed "$result")"
    refused="$(load_refused "$result")"
    requests="$(json_field requests <<<"$result")"
    figure "systemctl restart with the fd store: serving again $((t1 - t0)) ms after the restart began; under load $requests requests, $failed failed, $refused refused"
    if [ "$failed" = 0 ] && [ "$refused" = 0 ] && [ "${requests:-0}" -gt 0 ] \
        && ct_sh "journalctl -u arbiter@store --no-pager -o cat | grep -q 'back from systemd.s fd store'"; then
        pass "fd store: systemctl restart under load: 0 refused, 0 failed of $requests (the socket stays in systemd's fd store)"
    else
        fail "fd store: systemctl restart under load" "$result"
    fi
    ct systemctl stop arbiter@store.service
}
