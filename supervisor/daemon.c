/* daemon.c - the composition root: `arbiter run` and `arbiter check` from the command line to exit.
 *
 * It builds everything in order and wires it together: the logs, the upgrade's hand-over (when
 * this image replaces an older one in place), the identity the workers run as, the listeners
 * (bound, taken from systemd, or adopted), the board, the pool and its spawner, then the front
 * doors (signals, control socket, --metrics) that observe the core (arbiter.h) through its one
 * observer hook. Start-up binds (or adopts) every listener before any worker exists, so a bad
 * address fails fast with exit 2 and nothing to clean up. The state document of an in-place
 * upgrade is written and read here too, since it spans the core and the front doors. */
#define _GNU_SOURCE
#include "daemon.h"

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
#include "shim.h"
#include "version.h"

static int resolve_identity(const struct config *c, struct pool_identity *id, char *err, size_t err_size) {
    if (c->user) {
        struct passwd *pw = getpwnam(c->user);
        if (!pw) {
            snprintf(err, err_size, "--user %s: no such user", c->user);
            return -1;
        }
        id->set_uid = true;
        id->uid = pw->pw_uid;
        if (!c->group) {
            id->set_gid = true;
            id->gid = pw->pw_gid;
        }
    }
    if (c->group) {
        struct group *gr = getgrnam(c->group);
        if (!gr) {
            snprintf(err, err_size, "--group %s: no such group", c->group);
            return -1;
        }
        id->set_gid = true;
        id->gid = gr->gr_gid;
    }
    if ((id->set_uid || id->set_gid) && geteuid() != 0) {
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

static int open_listeners(struct arbiter *a, const struct pool_identity *id, char *err, size_t err_size) {
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
    if ((id->set_uid || id->set_gid) &&
        listener_chown_unix(&a->listeners, id->set_uid ? id->uid : (uid_t)-1, id->set_gid ? id->gid : (gid_t)-1, err,
                            err_size) != 0) {
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

/* The state document the next image adopts (upgrade.h's save hook). */
static json_t *daemon_save_state(void *data) {
    const struct daemon *d = data;
    const struct arbiter *a = &d->arbiter;
    const struct upgrade *upgrade = &a->upgrade;
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
                              control_fd(&d->control), "metrics_fd", metrics_fd(&d->metrics), "pool",
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

static const char *daemon_upgrade_busy(void *data) {
    return arbiter_upgrade_busy(&((struct daemon *)data)->arbiter);
}

static void daemon_upgrade_changed(void *data) {
    arbiter_changed(&((struct daemon *)data)->arbiter);
}

/* The core's observer: the front doors hear of every change; at the end everything closes. */
static void daemon_observe(struct arbiter *a, enum arbiter_event event) {
    struct daemon *d = a->observer.data;
    if (event == ARBITER_CHANGED) {
        control_on_change(&d->control);
        return;
    }
    log_info("stopped", "all workers stopped; exiting with %d", a->exit_code);
    control_close(&d->control);
    metrics_close(&d->metrics);
    signals_close(&d->signals);
    arbiter_close(a);
}

static int daemon_open_logs(const struct config *config) {
    log_configure(config->log_level, config->log_format, config->name);
    char err[CONFIG_ERROR_MAX];
    if ((config->log_to_stdout && log_use_stdout(err, sizeof err) != 0) ||
        (config->log_file && log_open_file(config->log_file, err, sizeof err) != 0) ||
        (!config->log_to_stdout && !config->log_file && log_use_stderr(err, sizeof err) != 0)) {
        log_event(LOG_CRITICAL, "config_error", 0, 0, "%s", err);
        return -1;
    }
    return 0;
}

/* Room for every slot's worker, a successor each, and as many draining: more only waits. After an
 * in-place upgrade the workers keep the board they have mapped. */
static struct board *daemon_open_board(struct arbiter *a, json_t *handed) {
    char err[CONFIG_ERROR_MAX];
    json_t *handed_board = handed ? json_object_get(handed, "board_fd") : NULL;
    if (handed_board ? board_adopt(&a->board, (int)json_integer_value(handed_board), err, sizeof err) != 0
                     : board_open(&a->board, (size_t)a->config->max_workers * 2 + 8, err, sizeof err) != 0)
        log_warning("board_unavailable", "%s; workers run without shared gauges (--balance kernel, no autoscale signals "
                    "but heartbeats)", err);
    else
        return &a->board;
    return NULL;
}

/* The pool and its spawner: exec, or the fork server (--preload). */
static int daemon_build_pool(struct arbiter *a, const struct pool_identity *identity, struct board *board) {
    a->exec_spawner = (struct spawner){.ops = &spawner_exec_ops};
    if (a->config->preload)
        fork_server_init(&a->fork_server, a->loop);
    struct pool_deps deps = {
        .listen_fds = a->listen_fds,
        .listen_fd_count = a->listeners.count,
        .shim_dir = a->shim_dir[0] ? a->shim_dir : NULL,
        .identity = *identity,
        .spawner = a->config->preload ? &a->fork_server.spawner : &a->exec_spawner,
        .reaper = &a->reaper,
        .leftovers = &a->leftovers,
        .board = board,
        .events = arbiter_pool_events(a),
    };
    return pool_init(&a->pool, a->loop, a->config, &deps);
}

/* The front doors: the control socket (not for `check`) and --metrics, opened or adopted. */
static int daemon_open_front_doors(struct daemon *d, json_t *handed) {
    struct arbiter *a = &d->arbiter;
    char err[CONFIG_ERROR_MAX];
    int handed_control = handed ? (int)json_integer_value(json_object_get(handed, "control_fd")) : -1;
    int handed_metrics = handed ? (int)json_integer_value(json_object_get(handed, "metrics_fd")) : -1;
    if (!a->check_mode && (handed_control >= 0 ? control_adopt(&d->control, a, handed_control, err, sizeof err)
                                               : control_start(&d->control, a, err, sizeof err)) != 0) {
        log_event(LOG_CRITICAL, "control_failed", 0, 0, "%s", err);
        a->exit_code = EXIT_USAGE;
        return -1;
    }
    a->sources.control_commands = &d->control.commands_total;
    const char *address = a->config->metrics;
    if (!address)
        return 0;
    if ((handed_metrics >= 0 ? metrics_adopt(&d->metrics, &a->sources, &a->autoscale, address, handed_metrics, err, sizeof err)
                             : metrics_start(&d->metrics, &a->sources, &a->autoscale, address, err, sizeof err)) != 0) {
        log_event(LOG_CRITICAL, "metrics_failed", 0, 0, "%s", err);
        if (handed_metrics < 0)
            a->exit_code = EXIT_USAGE;
        return -1;
    }
    return 0;
}

static void daemon_start_workers(struct arbiter *a) {
    const struct config *config = a->config;
    char err[CONFIG_ERROR_MAX];
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

/* Everything after the listeners: the front doors, the reaper, the adoption or the first workers. */
static void daemon_start(struct daemon *d, json_t *handed) {
    struct arbiter *a = &d->arbiter;
    char err[CONFIG_ERROR_MAX];
    int rc = signals_start(&d->signals, a);
    autoscale_start(&a->autoscale, &a->sources, &a->config->autoscale);
    if (rc == 0 && handed && adopt_workers(a, handed, err, sizeof err) != 0) {
        log_event(LOG_CRITICAL, "upgrade_failed", 0, 0, "cannot adopt the previous image's workers: %s", err);
        rc = -1;
    }
    if (rc == 0 && reaper_start(&a->reaper, a->loop, err, sizeof err) != 0) {
        log_event(LOG_CRITICAL, "startup_failed", 0, 0, "%s", err);
        rc = -1;
    }
    if (rc == 0)
        rc = daemon_open_front_doors(d, handed);
    if (rc != 0) {
        if (a->exit_code == EXIT_CLEAN)
            a->exit_code = EXIT_RUNTIME_FAILURE;
        a->state = ARBITER_STOPPING;
        if (handed) /* what was adopted goes down with us (workers follow by PR_SET_PDEATHSIG) */
            pool_stop(&a->pool, false);
        daemon_observe(a, ARBITER_FINISHED);
    } else if (handed) {
        arbiter_adopted(a);
    } else {
        daemon_start_workers(a);
    }
}

int daemon_run(struct config *config) {
    static struct daemon daemon; /* one per process; static keeps its handles at a fixed address */
    struct daemon *d = &daemon;
    struct arbiter *a = &d->arbiter;
    memset(d, 0, sizeof *d);
    if (daemon_open_logs(config) != 0)
        return EXIT_USAGE;
    uv_loop_t *loop = uv_default_loop();
    log_attach(loop);
    char err[CONFIG_ERROR_MAX];
    /* Before arbiter_init: notify_init removes the systemd variables that the next image needs. */
    upgrade_init(&a->upgrade, loop, &a->reaper, &a->notify,
                 (struct upgrade_hooks){daemon_upgrade_busy, daemon_save_state, daemon_upgrade_changed, d});
    json_t *handed = upgrade_take_state(err, sizeof err); /* set when we are the new image of an upgrade */
    if (!handed && err[0]) {
        log_event(LOG_CRITICAL, "upgrade_failed", 0, 0, "%s", err);
        return EXIT_RUNTIME_FAILURE;
    }
    a->config = config;
    struct pool_identity identity = {0};
    if (resolve_identity(config, &identity, err, sizeof err) != 0 ||
        (handed ? adopt_listeners(a, handed, err, sizeof err) : open_listeners(a, &identity, err, sizeof err)) != 0) {
        log_event(LOG_CRITICAL, "config_error", 0, 0, "%s", err);
        json_decref(handed);
        return EXIT_USAGE;
    }
    arbiter_init(a, loop, config, (struct arbiter_observer){daemon_observe, d});
    struct board *board = daemon_open_board(a, handed);
    shim_find_dir(a->shim_dir, sizeof a->shim_dir);
    if (!a->shim_dir[0]) /* installed with pip: the shim is in the venv's site-packages */
        log_debug("shim", "using the arbiter_worker package installed in the interpreter's environment");
    if (daemon_build_pool(a, &identity, board) != 0) {
        log_error("startup_failed", "out of memory");
        json_decref(handed);
        return EXIT_RUNTIME_FAILURE;
    }
    seed_jitter();
    daemon_start(d, handed);
    json_decref(handed);
    uv_run(loop, UV_RUN_DEFAULT);
    log_detach();
    uv_run(loop, UV_RUN_NOWAIT); /* finishes closing the log's retry timer */
    if (uv_loop_close(loop) != 0)
        log_error("handles_leaked", "some libuv handles were still open at exit (a bug in arbiter; please report it)");
    return a->exit_code;
}
