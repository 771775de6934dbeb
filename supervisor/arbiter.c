/* arbiter.c - the daemon's life: start, run, reload, stop.
 *
 * Start-up binds (or adopts) every listener before any worker exists, so a bad address fails fast
 * with exit 2 and nothing to clean up. Then the loop runs until the pool reports it is empty after a
 * stop; arbiter_finish() then closes every remaining handle, each through its owner's close
 * function, and uv_run returns because nothing is left. The pool's `changed` event is where
 * aggregate states are derived: all workers ready (READY=1 to systemd, `check` passes), a reload
 * finished, the STATUS= line. */
#define _GNU_SOURCE
#include "arbiter.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#ifndef ARBITER_SOURCE_SHIM_DIR
#define ARBITER_SOURCE_SHIM_DIR ""
#endif

const char *arbiter_state_name(const struct arbiter *a) {
    if (a->state == ARBITER_RUNNING && reload_running(&a->pool.reload))
        return "reloading";
    static const char *const names[] = {"starting", "running", "stopping"};
    return names[a->state];
}

static bool shim_dir_valid(const char *dir) {
    char probe[PATH_MAX + 64];
    snprintf(probe, sizeof probe, "%s/arbiter_worker/__main__.py", dir);
    return access(probe, R_OK) == 0;
}

/* Where the worker shim lives: $ARBITER_SHIM_PATH, the installed share directory next to the
 * binary, or the source tree this binary was built from. Empty when none has it: the shim must then
 * be installed in the app's venv (the wheel does that). */
static void find_shim_dir(char *out, size_t size) {
    const char *from_env = getenv("ARBITER_SHIM_PATH");
    if (from_env && *from_env) {
        snprintf(out, size, "%s", from_env);
        if (!shim_dir_valid(out))
            log_warning("shim_missing", "ARBITER_SHIM_PATH=%s has no arbiter_worker package", from_env);
        return;
    }
    char dir[PATH_MAX];
    if (config_executable_dir(dir, sizeof dir) == 0) {
        int n = snprintf(out, size, "%s/../share/arbiter/python", dir);
        if (n > 0 && (size_t)n < size && shim_dir_valid(out))
            return;
    }
    snprintf(out, size, "%s", ARBITER_SOURCE_SHIM_DIR);
    if (*out && shim_dir_valid(out))
        return;
    out[0] = '\0';
}

void arbiter_find_shim_dir(char *out, size_t size) {
    find_shim_dir(out, size);
}

static void arbiter_update_status(struct arbiter *a) {
    char status[sizeof a->status_line];
    snprintf(status, sizeof status, "%u/%u workers ready%s", pool_ready_count(&a->pool), a->pool.target,
             a->state == ARBITER_STOPPING ? ", stopping" : reload_running(&a->pool.reload) ? ", reloading" : "");
    if (strcmp(status, a->status_line) != 0) {
        memcpy(a->status_line, status, sizeof status);
        notify_send(&a->notify, "STATUS=%s", status);
    }
}

static void arbiter_on_pool_changed(struct pool *pool) {
    struct arbiter *a = pool->events.data;
    unsigned ready = pool_ready_count(pool);
    if (a->state == ARBITER_STARTING && ready == pool->target) {
        a->state = ARBITER_RUNNING;
        log_info("ready", "%u worker%s ready in %llu ms", ready, ready == 1 ? "" : "s",
                 (unsigned long long)(uv_now(a->loop) - a->started_ms));
        notify_send(&a->notify, "READY=1\nSTATUS=%u/%u workers ready", ready, pool->target);
        if (a->check_mode) {
            log_info("check_passed", "the app booted through lifespan startup; stopping");
            arbiter_stop(a, true, "check passed");
            return;
        }
        if (pool->reload.queued) {
            arbiter_reload(a, "requested while starting");
            return;
        }
    }
    /* A reload that ended (done, failed, or past its bound) tells systemd it is back. */
    if (a->reload_notified != pool->reload.id && !reload_running(&pool->reload)) {
        a->reload_notified = pool->reload.id;
        notify_send(&a->notify, "READY=1");
    }
    arbiter_update_status(a);
    control_on_change(&a->control);
}

static void arbiter_restart_deadline(struct worker *w, const struct slot *slot, void *data) {
    (void)slot;
    worker_on_loop_stall(w, *(const uint64_t *)data);
}

/* The heartbeats that arrived while the arbiter could not run are still unread: the workers are not
 * to blame for the time the arbiter lost, so every liveness deadline starts again. */
static void arbiter_on_stall(struct stall *stall, uint64_t stalled_ms) {
    struct arbiter *a = stall->data;
    unsigned live = pool_live_count(&a->pool);
    log_warning("loop_stalled", "the arbiter's event loop stalled for %.1f s (the process was stopped, the VM paused or "
                "the CPU throttled): the liveness deadlines of %u worker%s start again instead of killing them",
                (double)stalled_ms / 1000, live, live == 1 ? "" : "s");
    pool_walk(&a->pool, false, arbiter_restart_deadline, &stalled_ms);
}

static void arbiter_finish(struct arbiter *a) {
    log_info("stopped", "all workers stopped; exiting with %d", a->exit_code);
    stall_close(&a->stall);
    leftovers_close(&a->leftovers);
    autoscale_close(&a->autoscale);
    uv_close((uv_handle_t *)&a->lame_duck_timer, NULL); /* embedded in struct arbiter */
    control_close(&a->control);
    metrics_close(&a->metrics);
    upgrade_close(&a->upgrade);
    pool_close(&a->pool);
    reaper_close(&a->reaper);
    signals_close(a);
    notify_close(&a->notify);
    listener_close_all(&a->listeners);
    board_close(&a->board);
}

static void arbiter_on_swept(struct leftovers *leftovers) {
    arbiter_finish(leftovers->data);
}

/* The workers are gone; what the app started and left with the arbiter goes before it exits. */
static void arbiter_on_pool_empty(struct pool *pool) {
    struct arbiter *a = pool->events.data;
    if (a->state == ARBITER_STOPPING)
        leftovers_sweep(&a->leftovers, arbiter_on_swept, a);
}

static void arbiter_on_boot_failed(struct pool *pool, int exit_code) {
    struct arbiter *a = pool->events.data;
    a->exit_code = exit_code;
    arbiter_stop(a, false, "the app failed to boot");
}

/* Stops accepting, then stops the workers: the arbiter closes its copies of the listeners first,
 * and each worker accepts what is already queued on its own copies before closing them
 * (docs/worker-channel.md, "The drain"). Once the last copy is closed the kernel refuses new
 * clients at once (ECONNREFUSED, which balancers retry), and no queued client is reset or left
 * waiting for a socket nobody accepts from. */
static void arbiter_stop_workers(struct arbiter *a, bool graceful) {
    a->lame_duck = false;
    uv_timer_stop(&a->lame_duck_timer);
    listener_close_for_stop(&a->listeners);
    pool_close_listeners(&a->pool);
    pool_stop(&a->pool, graceful);
}

static void arbiter_on_lame_duck_over(uv_timer_t *timer) {
    struct arbiter *a = timer->data;
    log_info("lame_duck_over", "lame duck over: new connections are refused; workers finish their requests");
    arbiter_stop_workers(a, true);
}

/* A graceful stop with --lame-duck S first only turns /healthz to 503 and keeps serving for S
 * seconds, so a load balancer takes the node out before any client is refused. During that time a
 * second graceful stop ends the lame duck at once, a quick stop (INT, QUIT) stops everything now. */
void arbiter_stop(struct arbiter *a, bool graceful, const char *why) {
    bool already = a->state == ARBITER_STOPPING;
    if (already && a->lame_duck) {
        log_info("stopping", "%s stop (%s) during the lame duck: ending it now%s", graceful ? "graceful" : "quick", why,
                 graceful ? "; workers finish their requests" : "");
        arbiter_stop_workers(a, graceful);
        return;
    }
    if (already && (graceful || !a->pool.graceful_stop))
        return; /* already stopping at least this fast */
    bool lame_duck = !already && graceful && a->config->lame_duck > 0 && !a->check_mode;
    log_info("stopping", "%s stop (%s)%s", graceful ? "graceful" : "quick", why,
             lame_duck ? ": lame duck first" : graceful ? ": workers finish their requests" : "");
    a->state = ARBITER_STOPPING;
    autoscale_stop(&a->autoscale);
    /* Tell systemd how long the lame duck and the drain may take, so TimeoutStopSec does not cut
     * them short. */
    notify_send(&a->notify, "STOPPING=1\nEXTEND_TIMEOUT_USEC=%llu",
                (unsigned long long)((a->config->graceful_timeout + (lame_duck ? a->config->lame_duck : 0) + 5) * 1e6));
    control_on_change(&a->control);
    if (!lame_duck) {
        arbiter_stop_workers(a, graceful);
        return;
    }
    a->lame_duck = true;
    log_info("lame_duck", "lame duck for %.1f s (--lame-duck): /healthz says 503, new connections are still served",
             a->config->lame_duck);
    uv_timer_start(&a->lame_duck_timer, arbiter_on_lame_duck_over, (uint64_t)(a->config->lame_duck * 1000.0 + 0.5), 0);
}

void arbiter_reload(struct arbiter *a, const char *why) {
    if (a->state == ARBITER_STOPPING) {
        log_warning("reload_refused", "reload (%s) ignored while stopping", why);
        return;
    }
    if (a->state == ARBITER_STARTING) {
        /* A deploy that lands during a start must not be lost: run it once every worker is ready. */
        a->pool.reload.queued = true;
        log_info("reload_queued", "reload (%s) requested while starting: it runs once the workers are ready", why);
        return;
    }
    if (reload_joins(&a->pool.reload, uv_now(a->loop))) {
        reload_join(&a->pool.reload, uv_now(a->loop), why);
        return;
    }
    notify_send(&a->notify, "RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long)notify_monotonic_usec());
    log_info("reload", "reload requested (%s)", why);
    pool_reload(&a->pool); /* reports the change, which finishes at once when there is nothing to replace */
}

int arbiter_scale(struct arbiter *a, unsigned target, const char *why) {
    if (a->state == ARBITER_STOPPING)
        return -1;
    autoscale_disable(&a->autoscale, why);
    log_info("scale", "scale to %u workers (%s)", target, why);
    return pool_scale(&a->pool, target);
}

static int resolve_identity(struct arbiter *a, char *err, size_t err_size) {
    const struct config *c = a->config;
    if (c->user) {
        struct passwd *pw = getpwnam(c->user);
        if (!pw) {
            snprintf(err, err_size, "--user %s: no such user", c->user);
            return -1;
        }
        a->pool.set_uid = true;
        a->pool.uid = pw->pw_uid;
        if (!c->group) {
            a->pool.set_gid = true;
            a->pool.gid = pw->pw_gid;
        }
    }
    if (c->group) {
        struct group *gr = getgrnam(c->group);
        if (!gr) {
            snprintf(err, err_size, "--group %s: no such group", c->group);
            return -1;
        }
        a->pool.set_gid = true;
        a->pool.gid = gr->gr_gid;
    }
    if ((a->pool.set_uid || a->pool.set_gid) && geteuid() != 0) {
        snprintf(err, err_size, "--user/--group need the arbiter to start as root");
        return -1;
    }
    return 0;
}

/* Without tcp_migrate_req, closing a reuse-port listener resets the connections queued on it. */
static void warn_if_requests_cannot_migrate(void) {
    FILE *file = fopen("/proc/sys/net/ipv4/tcp_migrate_req", "re");
    int value = 0;
    if (file) {
        if (fscanf(file, "%d", &value) != 1)
            value = 0;
        fclose(file);
    }
    if (value != 1)
        log_warning("reuse_port_migration", "--reuse-port with net.ipv4.tcp_migrate_req=%d: on scale-down, connections "
                    "still queued on the removed worker's listener are reset. Set `sysctl -w net.ipv4.tcp_migrate_req=1` "
                    "(Linux >= 5.14) so the kernel moves them to the other workers", value);
}

/* --max-requests-jitter draws each worker's share with random(): seeded per process, so that nodes
 * started together (a fleet, a deploy) do not replace their workers in step. */
static void seed_jitter(void) {
    unsigned seed;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
        seed = (unsigned)getpid() ^ (unsigned)time(NULL) ^ (unsigned)clock(); /* no entropy yet (early boot) */
    srandom(seed);
}

static int open_listeners(struct arbiter *a, char *err, size_t err_size) {
    unsigned systemd_count = 0;
    if (listener_systemd_count(getenv("LISTEN_PID"), getenv("LISTEN_FDS"), (int)getpid(), &systemd_count, err, err_size) != 0)
        return -1;
    const char *names = getenv("LISTEN_FDNAMES");
    if (a->config->bind_count == 0) {
        if (systemd_count == 0) {
            snprintf(err, err_size, "socket activation: LISTEN_FDS is set but not for this process (LISTEN_PID differs); pass --bind");
            return -1;
        }
        if (listener_adopt_systemd(&a->listeners, systemd_count, names, err, err_size) != 0)
            return -1;
    } else {
        /* With --bind, fds from systemd are the listeners its fd store kept across a restart: an
         * address that has one takes it back (with the clients queued on it); the rest bind anew. */
        int stored[LISTENER_MAX];
        size_t stored_count = systemd_count < LISTENER_MAX ? systemd_count : LISTENER_MAX;
        for (size_t i = 0; i < stored_count; i++)
            stored[i] = 3 + (int)i;
        a->listeners.reuse_port = a->config->reuse_port;
        if (listener_open_all_reusing(&a->listeners, a->config->binds, a->config->bind_count, stored, stored_count,
                                      (int)a->config->backlog, a->config->socket_mode, err, err_size) != 0)
            return -1;
        for (size_t i = 0; i < stored_count; i++) {
            if (stored[i] < 0) {
                a->stored_listeners++;
                continue;
            }
            log_info("fdstore_unused", "closing fd %d from systemd's fd store: no --bind address uses it any more",
                     stored[i]);
            close(stored[i]);
        }
    }
    if ((a->pool.set_uid || a->pool.set_gid) &&
        listener_chown_unix(&a->listeners, a->pool.set_uid ? a->pool.uid : (uid_t)-1,
                            a->pool.set_gid ? a->pool.gid : (gid_t)-1, err, err_size) != 0) {
        listener_close_all(&a->listeners);
        return -1;
    }
    if (a->config->reuse_port)
        warn_if_requests_cannot_migrate();
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    for (size_t i = 0; i < a->listeners.count; i++) {
        a->listen_fds[i] = a->listeners.items[i].fd;
        log_info("listening", "listening on %s", a->listeners.items[i].name);
    }
    return 0;
}

/* ---- in-place upgrade ---- */

json_t *arbiter_save_state(const struct arbiter *a, const struct upgrade *upgrade) {
    json_t *listeners = json_array();
    for (size_t i = 0; i < a->listeners.count; i++) {
        const struct listener *l = &a->listeners.items[i];
        json_array_append_new(listeners, json_pack("{s:i, s:s, s:b, s:b, s:I}", "fd", l->fd, "name", l->name, "adopted",
                                                   l->adopted, "from_systemd", l->from_systemd, "unix_inode",
                                                   (json_int_t)l->unix_inode));
    }
    json_t *state = json_pack("{s:i, s:s, s:s, s:i, s:I, s:o, s:i, s:i, s:o, s:I}", "state_version", UPGRADE_STATE_VERSION,
                              "version", ARBITER_VERSION, "build", upgrade->build, "upgrades", (int)upgrade->upgrades,
                              "started_ms", (json_int_t)a->started_ms, "listeners", listeners, "control_fd",
                              control_fd(&a->control), "metrics_fd", metrics_fd(&a->metrics), "pool",
                              pool_save(&a->pool), "orphans_reaped", (json_int_t)a->reaper.orphans_reaped);
    if (state && a->config->preload)
        json_object_set_new(state, "fork_server", fork_server_save(&a->fork_server));
    if (state && a->board.entries)
        json_object_set_new(state, "board_fd", json_integer(a->board.fd)); /* the workers have it mapped */
    const struct autoscale_policy *p = &a->autoscale.policy;
    if (state) /* `ctl autoscale` may have changed it since the command line */
        json_object_set_new(state, "autoscale", json_pack("{s:b, s:i, s:i}", "enabled", p->enabled, "min", (int)p->min,
                                                          "max", (int)p->max));
    return state;
}

/* The listeners the previous image had, in the same order (the workers' fds 3.. follow it). */
static int adopt_listeners(struct arbiter *a, json_t *handed, char *err, size_t err_size) {
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(handed, "listeners"), i, item) {
        int fd = (int)json_integer_value(json_object_get(item, "fd"));
        if (listener_adopt(&a->listeners, fd, json_string_value(json_object_get(item, "name")), err, err_size) != 0)
            return -1;
        struct listener *l = &a->listeners.items[a->listeners.count - 1];
        l->adopted = json_is_true(json_object_get(item, "adopted"));
        l->from_systemd = json_is_true(json_object_get(item, "from_systemd"));
        l->unix_inode = (ino_t)json_integer_value(json_object_get(item, "unix_inode"));
        a->listen_fds[i] = fd;
    }
    a->listeners.reuse_port = a->config->reuse_port;
    if (a->listeners.count == 0) {
        snprintf(err, err_size, "the upgrade state has no listeners");
        return -1;
    }
    return 0;
}

static int adopt_workers(struct arbiter *a, json_t *handed, char *err, size_t err_size) {
    a->started_ms = (uint64_t)json_integer_value(json_object_get(handed, "started_ms"));
    a->reaper.orphans_reaped = (uint64_t)json_integer_value(json_object_get(handed, "orphans_reaped"));
    json_t *autoscale = json_object_get(handed, "autoscale");
    if (json_is_true(json_object_get(autoscale, "enabled")))
        autoscale_enable(&a->autoscale, (unsigned)json_integer_value(json_object_get(autoscale, "min")),
                         (unsigned)json_integer_value(json_object_get(autoscale, "max")), "as before the upgrade");
    else if (json_is_false(json_object_get(autoscale, "enabled")))
        autoscale_disable(&a->autoscale, "as before the upgrade");
    if (pool_restore(&a->pool, json_object_get(handed, "pool"), err, err_size) != 0)
        return -1;
    json_t *fork_server = json_object_get(handed, "fork_server");
    if (a->config->preload && fork_server && fork_server_restore(&a->fork_server, fork_server, err, err_size) != 0)
        return -1;
    struct upgrade *u = &a->upgrade;
    u->upgrades = (unsigned)json_integer_value(json_object_get(handed, "upgrades")) + 1;
    snprintf(u->previous_version, sizeof u->previous_version, "%s", json_string_value(json_object_get(handed, "version")) ?: "?");
    snprintf(u->previous_build, sizeof u->previous_build, "%s", json_string_value(json_object_get(handed, "build")) ?: "?");
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    u->upgraded_at = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
    return 0;
}

/* Under systemd with --bind: the listeners go into its fd store, so a `systemctl restart` never closes
 * them (FileDescriptorStoreMax= in the unit; without it systemd drops them, and nothing changes). */
static void arbiter_store_listeners(struct arbiter *a) {
    if (a->config->bind_count == 0 || a->notify.fd < 0 || a->check_mode)
        return;
    for (size_t i = 0; i < a->listeners.count; i++) {
        char name[256];
        notify_fd_name(a->listeners.items[i].address.text, i, name, sizeof name);
        notify_store_fd(&a->notify, a->listeners.items[i].fd, name);
    }
    if (a->stored_listeners)
        log_info("fdstore", "took %zu listener%s back from systemd's fd store: clients that connected during the "
                 "restart are served now", a->stored_listeners, a->stored_listeners == 1 ? "" : "s");
}

static void arbiter_adopted(struct arbiter *a) {
    const struct upgrade *u = &a->upgrade;
    a->state = ARBITER_RUNNING;
    a->reload_notified = a->pool.reload.id;
    log_info("upgraded", "upgraded in place from arbiter %s (build %s) to %s (build %s), pid %d: %u workers adopted, "
             "none restarted", u->previous_version, u->previous_build, ARBITER_VERSION, u->build, (int)getpid(),
             pool_live_count(&a->pool));
    notify_send(&a->notify, "READY=1\nSTATUS=%u/%u workers ready, upgraded", pool_ready_count(&a->pool), a->pool.target);
    arbiter_update_status(a);
}

int arbiter_run(struct config *config) {
    static struct arbiter arbiter; /* one per process; static keeps its handles at a fixed address */
    struct arbiter *a = &arbiter;
    memset(a, 0, sizeof *a);
    a->config = config;
    a->check_mode = strcmp(config->command, "check") == 0;
    a->exit_code = EXIT_CLEAN;
    log_configure(config->log_level, config->log_format, config->name);
    char err[CONFIG_ERROR_MAX];
    if (config->log_to_stdout && log_use_stdout(err, sizeof err) != 0) {
        log_event(LOG_CRITICAL, "config_error", 0, 0, "%s", err);
        return EXIT_USAGE;
    }
    if (config->log_file && log_open_file(config->log_file, err, sizeof err) != 0) {
        log_event(LOG_CRITICAL, "config_error", 0, 0, "%s", err);
        return EXIT_USAGE;
    }
    if (!config->log_to_stdout && !config->log_file && log_use_stderr(err, sizeof err) != 0) {
        log_event(LOG_CRITICAL, "config_error", 0, 0, "%s", err);
        return EXIT_USAGE;
    }

    a->loop = uv_default_loop();
    log_attach(a->loop);
    a->board.fd = -1;
    upgrade_init(&a->upgrade, a);
    json_t *handed = upgrade_take_state(err, sizeof err); /* set when we are the new image of an upgrade */
    if (!handed && err[0]) {
        log_event(LOG_CRITICAL, "upgrade_failed", 0, 0, "%s", err);
        return EXIT_RUNTIME_FAILURE;
    }
    struct pool_events events = {arbiter_on_pool_changed, arbiter_on_pool_empty, arbiter_on_boot_failed, NULL, a};
    if (pool_init(&a->pool, a->loop, config, events, a->listen_fds, 0, NULL) != 0) {
        log_error("startup_failed", "out of memory");
        json_decref(handed);
        return EXIT_RUNTIME_FAILURE;
    }
    if (resolve_identity(a, err, sizeof err) != 0 ||
        (handed ? adopt_listeners(a, handed, err, sizeof err) : open_listeners(a, err, sizeof err)) != 0) {
        log_event(LOG_CRITICAL, "config_error", 0, 0, "%s", err);
        pool_close(&a->pool);
        json_decref(handed);
        return EXIT_USAGE;
    }
    a->pool.listen_fd_count = a->listeners.count;
    /* Room for every slot's worker, a successor each, and as many draining: more only waits. After an
     * in-place upgrade the workers keep the board they have mapped. */
    json_t *handed_board = handed ? json_object_get(handed, "board_fd") : NULL;
    if (handed_board ? board_adopt(&a->board, (int)json_integer_value(handed_board), err, sizeof err) != 0
                     : board_open(&a->board, (size_t)config->max_workers * 2 + 8, err, sizeof err) != 0)
        log_warning("board_unavailable", "%s; workers run without shared gauges (--balance kernel, no autoscale signals "
                    "but heartbeats)", err);
    else
        a->pool.board = &a->board;
    find_shim_dir(a->shim_dir, sizeof a->shim_dir);
    if (!a->shim_dir[0]) /* installed with pip: the shim is in the venv's site-packages */
        log_debug("shim", "using the arbiter_worker package installed in the interpreter's environment");
    a->pool.shim_dir = a->shim_dir[0] ? a->shim_dir : NULL;
    seed_jitter();
    a->started_ms = uv_now(a->loop);
    uv_timer_init(a->loop, &a->lame_duck_timer);
    a->lame_duck_timer.data = a;
    stall_start(&a->stall, a->loop, config->timeout, arbiter_on_stall, a); /* arbiter_finish closes it */
    leftovers_init(&a->leftovers, a->loop);
    a->pool.leftovers = &a->leftovers;
    notify_init(&a->notify, a->loop);
    a->pool.reaper = &a->reaper;
    a->exec_spawner = (struct spawner){.ops = &spawner_exec_ops, .pool = &a->pool};
    a->pool.spawner = &a->exec_spawner;
    if (config->preload) {
        fork_server_init(&a->fork_server, &a->pool, a->shim_dir[0] ? a->shim_dir : NULL);
        a->pool.spawner = &a->fork_server.spawner;
    }
    int rc = signals_start(a);
    autoscale_start(&a->autoscale, a, &config->autoscale);
    if (rc == 0 && handed && adopt_workers(a, handed, err, sizeof err) != 0) {
        log_event(LOG_CRITICAL, "upgrade_failed", 0, 0, "cannot adopt the previous image's workers: %s", err);
        rc = -1;
    }
    if (rc == 0 && reaper_start(&a->reaper, a->loop, err, sizeof err) != 0) {
        log_event(LOG_CRITICAL, "startup_failed", 0, 0, "%s", err);
        rc = -1;
    }
    int handed_control = handed ? (int)json_integer_value(json_object_get(handed, "control_fd")) : -1;
    int handed_metrics = handed ? (int)json_integer_value(json_object_get(handed, "metrics_fd")) : -1;
    if (rc == 0 && !a->check_mode &&
        (handed_control >= 0 ? control_adopt(&a->control, a, handed_control, err, sizeof err)
                             : control_start(&a->control, a, err, sizeof err)) != 0) {
        log_event(LOG_CRITICAL, "control_failed", 0, 0, "%s", err);
        a->exit_code = EXIT_USAGE;
        rc = -1;
    }
    if (rc == 0 && config->metrics && handed_metrics >= 0 &&
        metrics_adopt(&a->metrics, a, config->metrics, handed_metrics, err, sizeof err) != 0) {
        log_event(LOG_CRITICAL, "metrics_failed", 0, 0, "%s", err);
        rc = -1;
    } else if (rc == 0 && config->metrics && handed_metrics < 0 && metrics_start(&a->metrics, a, config->metrics, err, sizeof err) != 0) {
        log_event(LOG_CRITICAL, "metrics_failed", 0, 0, "%s", err);
        a->exit_code = EXIT_USAGE;
        rc = -1;
    }
    if (rc != 0) {
        if (a->exit_code == EXIT_CLEAN)
            a->exit_code = EXIT_RUNTIME_FAILURE;
        a->state = ARBITER_STOPPING;
        if (handed) /* what was adopted goes down with us (workers follow by PR_SET_PDEATHSIG) */
            pool_stop(&a->pool, false);
        arbiter_finish(a);
    } else if (handed) {
        arbiter_adopted(a);
    } else {
        arbiter_store_listeners(a);
        log_info("starting", "arbiter %s (pid %d) starting %u worker%s for %s with %s", ARBITER_VERSION, (int)getpid(),
                 config->workers, config->workers == 1 ? "" : "s", config->app, config->python);
        if (config->boot_timeout > 0) /* slow lifespan startups must not hit TimeoutStartSec */
            notify_send(&a->notify, "EXTEND_TIMEOUT_USEC=%llu", (unsigned long long)((config->boot_timeout + 5) * 1e6));
        if (pool_start(&a->pool, err, sizeof err) != 0) {
            log_event(LOG_CRITICAL, "startup_failed", 0, 0, "%s", err);
            a->exit_code = EXIT_RUNTIME_FAILURE;
            arbiter_stop(a, false, "start-up failed");
        }
    }
    json_decref(handed);
    uv_run(a->loop, UV_RUN_DEFAULT);
    log_detach();
    uv_run(a->loop, UV_RUN_NOWAIT); /* finishes closing the log's retry timer */
    if (uv_loop_close(a->loop) != 0)
        log_error("handles_leaked", "some libuv handles were still open at exit (a bug in arbiter; please report it)");
    return a->exit_code;
}
