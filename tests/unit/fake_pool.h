/* fake_pool.h - a pool driven through a fake spawner, for test_pool.c and test_status.c.
 *
 * The fake spawner opens each worker's channel on a socketpair and reports a pid above the
 * kernel's PID_MAX_LIMIT, so any signal the pool sends finds no process. Exits are delivered the
 * way the reaper delivers them (the worker's reaper entry), readiness the way the shim reports it
 * (a channel message). Header-only: each test file that includes it has its own fixture. */
#ifndef ARBITER_TEST_FAKE_POOL_H
#define ARBITER_TEST_FAKE_POOL_H

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pool.h"
#include "unit.h"

#define FAKE_PID_BASE 5000000 /* > PID_MAX_LIMIT (4194304): kill() finds nothing */
#define FAKE_PEERS_MAX 512

struct fake_spawner {
    struct spawner base;
    unsigned fail_next; /* the next N spawns fail at once */
    unsigned spawned;
    int peers[FAKE_PEERS_MAX];
    size_t peer_count;
};

struct fixture {
    uv_loop_t loop;
    struct config config;
    struct pool pool;
    struct reaper reaper;
    struct fake_spawner spawner;
    unsigned changed, empty, reload_finished;
    int boot_failed_code;
};

static inline int fake_spawn(struct spawner *spawner, struct worker *w, const struct worker_launch *launch, char *err,
                      size_t err_size) {
    struct fake_spawner *fake = (struct fake_spawner *)spawner;
    (void)launch;
    if (fake->fail_next) {
        fake->fail_next--;
        snprintf(err, err_size, "cannot start python3.99: no such file or directory");
        return -1;
    }
    int pair[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    ck_assert_int_eq(worker_open(w, pair[0], err, err_size), 0);
    ck_assert_uint_lt(fake->peer_count, FAKE_PEERS_MAX);
    fake->peers[fake->peer_count++] = pair[1];
    worker_started(w, FAKE_PID_BASE + (int)fake->spawned++);
    static const char hello[] = "{\"type\":\"hello\",\"protocol\":1}";
    worker_handle_message(w, hello, sizeof hello - 1);
    return 0;
}

static const struct spawner_ops fake_ops = {.name = "fake", .spawn = fake_spawn};

static inline void on_changed(struct pool *pool) { ((struct fixture *)pool->events.data)->changed++; }
static inline void on_empty(struct pool *pool) { ((struct fixture *)pool->events.data)->empty++; }
static inline void on_boot_failed(struct pool *pool, int code) { ((struct fixture *)pool->events.data)->boot_failed_code = code; }
static inline void on_reload_finished(struct pool *pool) { ((struct fixture *)pool->events.data)->reload_finished++; }

static struct fixture fx;

static inline void fixture_start(unsigned workers, unsigned max_surge) {
    memset(&fx, 0, sizeof fx);
    ck_assert_int_eq(uv_loop_init(&fx.loop), 0);
    fx.config.command = "run";
    fx.config.app = "app:app";
    fx.config.python = "python3";
    fx.config.workers = workers;
    fx.config.max_workers = 16;
    fx.config.timeout = 30;
    fx.config.boot_timeout = 60;
    fx.config.graceful_timeout = 30;
    fx.config.max_surge = max_surge;
    fx.config.log_level = LOG_CRITICAL;
    log_configure(LOG_CRITICAL, LOG_FORMAT_TEXT, "test");
    struct pool_events events = {on_changed, on_empty, on_boot_failed, on_reload_finished, &fx};
    fx.reaper.loop = &fx.loop;
    fx.spawner.base = (struct spawner){.ops = &fake_ops};
    struct pool_deps deps = {.spawner = &fx.spawner.base, .reaper = &fx.reaper, .events = events};
    ck_assert_int_eq(pool_init(&fx.pool, &fx.loop, &fx.config, &deps), 0);
    char err[256];
    ck_assert_int_eq(pool_start(&fx.pool, err, sizeof err), 0);
}

static inline struct worker *active(unsigned id) {
    struct slot *slot = pool_find_slot(&fx.pool, id);
    ck_assert_ptr_nonnull(slot);
    return slot->active;
}

static inline struct worker *successor(unsigned id) { return pool_find_slot(&fx.pool, id)->successor; }

static inline void say(struct worker *w, const char *line) { worker_handle_message(w, line, strlen(line)); }

static inline void become_ready(struct worker *w) {
    ck_assert_ptr_nonnull(w);
    say(w, "{\"type\":\"ready\"}");
    ck_assert_str_eq(worker_state_name(w->state), "ready");
}

static inline void all_ready(void) {
    for (unsigned id = 1; id <= fx.pool.slot_count; id++)
        if (active(id)->state == WORKER_BOOTING)
            become_ready(active(id));
}

/* As the reaper delivers it; the worker is freed afterwards (once the loop closes its handles). */
static inline void worker_exits(struct worker *w, int exit_code, int term_signal) {
    reaper_unwatch(&fx.reaper, &w->child.reaped);
    w->child.reaped.exited(&w->child.reaped, exit_code, term_signal);
}

/* Runs the loop until cond holds, at most deadline_ms. */
#define RUN_UNTIL(cond, deadline_ms) UNIT_RUN_UNTIL(&fx.loop, cond, deadline_ms)

static inline void fixture_stop(void) {
    pool_stop(&fx.pool, false);
    while (fx.reaper.watched) {
        struct reaper_entry *entry = fx.reaper.watched;
        reaper_unwatch(&fx.reaper, entry);
        entry->exited(entry, 0, 0);
    }
    ck_assert_uint_eq(fx.empty, 1);
    pool_close(&fx.pool);
    uv_run(&fx.loop, UV_RUN_DEFAULT);
    for (size_t i = 0; i < fx.spawner.peer_count; i++)
        close(fx.spawner.peers[i]);
    ck_assert_int_eq(uv_loop_close(&fx.loop), 0);
}

#endif
