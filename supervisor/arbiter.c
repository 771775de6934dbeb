/* arbiter.c - the daemon's core: its life from the first ready worker to the last exit, and the
 * actions the front doors ask for (stop, reload, scale).
 *
 * The pool's `changed` event is where aggregate states are derived: all workers ready (READY=1 to
 * systemd, `check` passes), a reload finished, the STATUS= line. A stop closes the listeners, drains
 * the workers, sweeps what they left (leftovers.c), and then tells the observer ARBITER_FINISHED;
 * the composition root (daemon.c) closes the front doors and arbiter_close() the rest, each handle
 * through its owner's close function, so uv_run returns because nothing is left. The core never
 * calls a front door: they observe it through arbiter_changed(). */
#define _GNU_SOURCE
#include "arbiter.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "version.h"

const char *arbiter_state_name(const struct arbiter *a) {
    return status_state_name(&a->sources);
}

void arbiter_changed(struct arbiter *a) {
    a->observer.notify(a, ARBITER_CHANGED);
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
    arbiter_changed(a);
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

static void arbiter_on_swept(struct leftovers *leftovers) {
    struct arbiter *a = leftovers->data;
    a->observer.notify(a, ARBITER_FINISHED);
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
    arbiter_changed(a);
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

void arbiter_adopted(struct arbiter *a) {
    const struct upgrade *u = &a->upgrade;
    a->state = ARBITER_RUNNING;
    a->reload_notified = a->pool.reload.id;
    log_info("upgraded", "upgraded in place from arbiter %s (build %s) to %s (build %s), pid %d: %u workers adopted, "
             "none restarted", u->previous_version, u->previous_build, ARBITER_VERSION, u->build, (int)getpid(),
             pool_live_count(&a->pool));
    notify_send(&a->notify, "READY=1\nSTATUS=%u/%u workers ready, upgraded", pool_ready_count(&a->pool), a->pool.target);
    arbiter_update_status(a);
}

struct pool_events arbiter_pool_events(struct arbiter *a) {
    return (struct pool_events){arbiter_on_pool_changed, arbiter_on_pool_empty, arbiter_on_boot_failed, NULL, a};
}

const char *arbiter_upgrade_busy(const struct arbiter *a) {
    return a->state == ARBITER_STOPPING                               ? "the arbiter is stopping"
           : a->state == ARBITER_STARTING                             ? "the arbiter is still starting"
           : reload_running(&a->pool.reload)                          ? "a reload is running"
           : pool_spawning_count(&a->pool)                            ? "workers are being started"
           : a->config->preload && fork_server_busy(&a->fork_server) ? "the zygote is busy"
                                                                      : NULL;
}

void arbiter_init(struct arbiter *a, uv_loop_t *loop, struct config *config, struct arbiter_observer observer) {
    a->loop = loop;
    a->config = config;
    a->observer = observer;
    a->check_mode = strcmp(config->command, "check") == 0;
    a->exit_code = EXIT_CLEAN;
    a->board.fd = -1;
    a->started_ms = uv_now(loop);
    uv_timer_init(loop, &a->lame_duck_timer);
    a->lame_duck_timer.data = a;
    stall_start(&a->stall, loop, config->timeout, arbiter_on_stall, a); /* arbiter_close closes it */
    leftovers_init(&a->leftovers, loop);
    notify_init(&a->notify, loop);
    a->sources = (struct status_sources){
        .loop = loop,
        .config = config,
        .state = &a->state,
        .started_ms = &a->started_ms,
        .pool = &a->pool,
        .fork_server = config->preload ? &a->fork_server : NULL,
        .board = &a->board,
        .listeners = &a->listeners,
        .upgrade = &a->upgrade,
        .reaper = &a->reaper,
    };
}

void arbiter_close(struct arbiter *a) {
    stall_close(&a->stall);
    leftovers_close(&a->leftovers);
    autoscale_close(&a->autoscale);
    uv_close((uv_handle_t *)&a->lame_duck_timer, NULL); /* embedded in struct arbiter */
    upgrade_close(&a->upgrade);
    pool_close(&a->pool);
    reaper_close(&a->reaper);
    notify_close(&a->notify);
    listener_close_all(&a->listeners);
    board_close(&a->board);
}

