/* pool.c - the worker slots: how many, who runs in each, what happens when one exits.
 *
 * A slot is a numbered place for one worker. Its `active` worker serves; during a planned
 * replacement (reload, recycle, max-requests) a `successor` boots beside it, and only when the
 * successor is ready does the old worker leave the slot and drain, so capacity never drops by more
 * than the one slot being replaced. Replacements run one slot at a time across the pool.
 *
 * An unexpected exit restarts the slot after backoff_record_failure()'s delay; its restart timer is
 * the slot's only handle, closed through pool_close(). Before any worker has ever been ready, a boot
 * failure (the shim's exit 3 or 4, a boot timeout, a crash loop) means the app cannot start at all:
 * the pool reports it and the arbiter exits 3 instead of retrying forever. After that, a broken
 * replacement never takes down the workers that are serving. */
#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "environment.h"
#include "log.h"
#include "privileges.h"

static void slot_on_restart_timer(uv_timer_t *timer);
static void pool_reload_fail(struct pool *pool, const char *reason);
static void pool_on_reload_deadline(void *data);
static void pool_advance_replacements(struct pool *pool);
static void pool_changed(struct pool *pool);
static void pool_detach_and_stop(struct pool *pool, struct worker *w, bool graceful);

const char *exit_reason_name(enum exit_reason reason) {
    static const char *const names[EXIT_REASON_COUNT] = {"stopped",      "error",           "signal",
                                                          "heartbeat_timeout", "boot_timeout", "graceful_timeout",
                                                          "spawn_failed"};
    return reason < EXIT_REASON_COUNT ? names[reason] : "unknown";
}

static enum exit_reason classify_exit(const struct worker *w) {
    switch (w->kill_reason) {
    case KILL_HEARTBEAT_TIMEOUT: return EXIT_REASON_HEARTBEAT_TIMEOUT;
    case KILL_BOOT_TIMEOUT: return EXIT_REASON_BOOT_TIMEOUT;
    case KILL_GRACEFUL_TIMEOUT: return EXIT_REASON_GRACEFUL_TIMEOUT;
    case KILL_SPAWN_FAILED: return EXIT_REASON_SPAWN_FAILED;
    case KILL_PROTOCOL_MISMATCH: return EXIT_REASON_ERROR; /* like the shim's own exit 4 */
    case KILL_NONE: break;
    }
    if (w->term_signal)
        return EXIT_REASON_SIGNAL;
    return w->exit_status == 0 && w->stop_requested ? EXIT_REASON_STOPPED : EXIT_REASON_ERROR;
}

/* Why a slot's worker is (or no longer is) to be replaced by an overlapped successor. */
enum replace_reason {
    REPLACE_NONE_REPLACED,  /* not any more: its successor took over */
    REPLACE_NONE_CANCELLED, /* not any more: a reload failed, the pool stops, or no replacement could start */
    REPLACE_NONE_RESTARTING, /* not any more: it exited, its restart is a fresh worker */
    REPLACE_NONE_RESTORED,  /* as the previous image had it (in-place upgrade): not pending */
    REPLACE_RELOAD,         /* it runs an older generation than the reload's */
    REPLACE_RECYCLE,        /* ctl recycle */
    REPLACE_RETIRE,         /* the worker asked (max-requests, max-lifetime, max-memory) */
    REPLACE_RESTORED,       /* as the previous image had it: pending */
};

/* The one writer of slot->replace_pending. */
static void slot_mark_replacement(struct slot *slot, enum replace_reason reason) {
    slot->replace_pending = reason >= REPLACE_RELOAD;
}

const char *slot_state_name(const struct slot *slot) {
    if (slot->active)
        return worker_state_name(slot->active->state);
    return slot->state == SLOT_CRASHLOOP ? "crashloop" : "backoff";
}

static void pool_worker_ready(struct worker *w, void *data);
static void pool_worker_exited(struct worker *w, void *data);
static void pool_worker_retire(struct worker *w, const char *reason, void *data);

/* What the pool's workers share: what the pool was handed, and its own flag and events. */
static void pool_worker_env(struct pool *pool) {
    pool->worker_env = (struct worker_env){
        .loop = pool->loop,
        .config = pool->config,
        .reaper = pool->reaper,
        .leftovers = pool->leftovers,
        .board = pool->board,
        .stopping = &pool->stopping,
        .events = {.ready = pool_worker_ready, .exited = pool_worker_exited, .retire = pool_worker_retire, .data = pool},
    };
}

static const struct spawner_env *pool_spawner_env(struct pool *pool);

int pool_init(struct pool *pool, uv_loop_t *loop, const struct config *config, const struct pool_deps *deps) {
    memset(pool, 0, sizeof *pool);
    pool->loop = loop;
    pool->config = config;
    pool->events = deps->events;
    pool->listen_fds = deps->listen_fds;
    pool->listen_fd_count = deps->listen_fd_count;
    pool->shim_dir = deps->shim_dir;
    pool->set_uid = deps->identity.set_uid;
    pool->set_gid = deps->identity.set_gid;
    pool->uid = deps->identity.uid;
    pool->gid = deps->identity.gid;
    pool->reaper = deps->reaper;
    pool->leftovers = deps->leftovers;
    pool->board = deps->board;
    pool->spawner = deps->spawner;
    reload_init(&pool->reload, loop, pool_on_reload_deadline, pool);
    pool_worker_env(pool);
    if (pool->spawner)
        pool->spawner->env = pool_spawner_env(pool);
    pool->slots = calloc(config->max_workers, sizeof *pool->slots);
    return pool->slots ? 0 : -1;
}

struct launch_context pool_launch_context(const struct pool *pool) {
    return (struct launch_context){
        .config = pool->config,
        .shim_dir = pool->shim_dir,
        .set_uid = pool->set_uid,
        .set_gid = pool->set_gid,
        .uid = (unsigned)pool->uid,
        .gid = (unsigned)pool->gid,
    };
}

static void pool_spawner_changed(void *data);

static void pool_reload_failed(const char *reason, void *data) { pool_reload_fail(data, reason); }

/* What the spawner works with: the loop, config, reaper, the pool's generation, the launch recipe's
 * context, and the pool's own handlers of its events. */
static const struct spawner_env *pool_spawner_env(struct pool *pool) {
    pool->spawner_env = (struct spawner_env){
        .loop = pool->loop,
        .config = pool->config,
        .reaper = pool->reaper,
        .generation = &pool->generation,
        .launch = pool_launch_context(pool),
        .events = {.changed = pool_spawner_changed, .reload_failed = pool_reload_failed, .data = pool},
    };
    return &pool->spawner_env;
}

/* An adopted worker (in-place upgrade), placed in its slot (NULL: draining). */
static struct worker *pool_restore_worker(struct pool *pool, struct slot *slot, json_t *saved, char *err,
                                          size_t err_size) {
    struct worker *w = worker_restore(&pool->worker_env, saved, err, err_size);
    if (w)
        w->slot = slot;
    return w;
}

/* Asks the spawner for a worker for slot; NULL with err set when it could not even be asked. */
static struct worker *pool_spawn_worker(struct pool *pool, struct slot *slot, char *err, size_t err_size) {
    const struct config *c = pool->config;
    struct worker *w = calloc(1, sizeof *w);
    struct launch_numbers numbers;
    struct launch_context ctx = pool_launch_context(pool);
    unsigned max_requests = launch_max_requests(c);
    unsigned board_index = pool->board ? board_claim(pool->board) : 0;
    char **argv = launch_argv(&ctx, &numbers, false, max_requests);
    char **env = launch_env(&ctx, slot->id, pool->generation, pool->listen_fd_count, board_index);
    if (!w || !argv || !env) {
        snprintf(err, err_size, "out of memory preparing a worker");
        if (pool->board)
            board_release(pool->board, board_index);
        free(w);
        free(argv);
        environment_free(env);
        return NULL;
    }
    w->board_index = board_index;
    w->env = &pool->worker_env;
    w->slot = slot;
    w->slot_id = slot->id;
    w->generation = pool->generation;
    struct worker_launch launch = {
        .argv = argv,
        .env = env,
        .cwd = c->chdir,
        .listen_fds = pool->config->reuse_port ? slot->listen_fds : pool->listen_fds,
        .listen_fd_count = pool->listen_fd_count,
        .max_requests = max_requests,
        .board_fd = board_index ? pool->board->fd : -1,
        .board_index = board_index,
    };
    int rc = pool->spawner->ops->spawn(pool->spawner, w, &launch, err, err_size);
    free(argv);
    environment_free(env);
    if (rc != 0) {
        if (pool->board)
            board_release(pool->board, board_index);
        worker_close(w); /* frees w once its handles (if any were opened) are closed */
        return NULL;
    }
    pool->spawned_total++;
    log_event(LOG_DEBUG, "worker_spawned", slot->id, w->pid, "started (generation %u, %s)", w->generation,
              pool->spawner->ops->name);
    return w;
}

static void slot_schedule_restart(struct slot *slot, uint64_t delay_ms);

static bool pool_fail_boot_if_never_ready(struct pool *pool, const struct worker *w, const struct slot *slot);

static void slot_start(struct slot *slot) {
    struct pool *pool = slot->pool;
    char err[512];
    slot->state = SLOT_RUNNING;
    slot->spawn_failed = false;
    slot->active = pool_spawn_worker(pool, slot, err, sizeof err);
    if (slot->active)
        return;
    /* A spawn failure is a failed boot like any other: fatal before the app ever served, else the
     * slot backs off as for a crash. Decided on the restart timer, never here: the caller may be
     * walking the slots (start, scale) and must not see the pool stop under it. */
    log_event(LOG_ERROR, "worker_spawn_failed", slot->id, 0, "%s", err);
    snprintf(slot->last_exit, sizeof slot->last_exit, "could not start: %.78s", err);
    snprintf(slot->spawn_error, sizeof slot->spawn_error, "%.150s", err);
    slot->spawn_failed = true;
    pool->exits[EXIT_REASON_SPAWN_FAILED]++;
    uint64_t delay = backoff_record_failure(&slot->backoff, 0);
    if (pool->ever_ready)
        slot_schedule_restart(slot, delay);
    else
        uv_timer_start(&slot->restart_timer, slot_on_restart_timer, 0, 0);
}

static void slot_on_restart_timer(uv_timer_t *timer) {
    struct slot *slot = timer->data;
    struct pool *pool = slot->pool;
    if (pool->stopping || slot->active)
        return;
    if (slot->spawn_failed && !pool->ever_ready) {
        struct worker never = {.slot_id = slot->id, .kill_reason = KILL_SPAWN_FAILED};
        snprintf(never.spawn_error, sizeof never.spawn_error, "%s", slot->spawn_error);
        if (pool_fail_boot_if_never_ready(pool, &never, slot))
            return;
    }
    slot_start(slot);
}

static void slot_schedule_restart(struct slot *slot, uint64_t delay_ms) {
    struct pool *pool = slot->pool;
    slot->restarts++;
    pool->restarts_total++;
    if (backoff_is_crashloop(&slot->backoff)) {
        slot->state = SLOT_CRASHLOOP;
        log_event(LOG_ERROR, "worker_crashloop", slot->id, 0,
                  "crash loop: %u failures in a row (last: %s); next start in %.1f s. Fix the app; the other workers keep serving",
                  slot->backoff.failures, slot->last_exit, (double)delay_ms / 1000);
    } else {
        slot->state = SLOT_BACKOFF;
        log_event(LOG_INFO, "worker_restart", slot->id, 0, "restarting in %llu ms (failure %u in a row)",
                  (unsigned long long)delay_ms, slot->backoff.failures);
    }
    uv_timer_start(&slot->restart_timer, slot_on_restart_timer, delay_ms, 0);
}

static struct slot *slot_create(struct pool *pool, unsigned id) {
    struct slot *slot = calloc(1, sizeof *slot);
    if (!slot)
        return NULL;
    slot->pool = pool;
    slot->id = id;
    slot->state = SLOT_BACKOFF;
    snprintf(slot->last_exit, sizeof slot->last_exit, "none");
    for (size_t i = 0; i < pool->listen_fd_count; i++) {
        slot->listen_fds[i] = pool->listen_fds[i];
        if (!pool->config->reuse_port || id == 1)
            continue; /* slot 1 uses the listeners bound at start, the first of each SO_REUSEPORT group */
        char err[256];
        int fd = listener_open_sibling(pool->listen_fds[i], (int)pool->config->backlog, err, sizeof err);
        if (fd == -1) {
            log_event(LOG_ERROR, "reuse_port_failed", id, 0, "%s; this slot shares the first listener", err);
        } else if (fd >= 0) {
            slot->listen_fds[i] = fd;
            slot->owned[i] = true;
        }
    }
    uv_timer_init(pool->loop, &slot->restart_timer);
    slot->restart_timer.data = slot;
    return slot;
}

/* Closing our copy first makes the draining worker's close the last one: with
 * net.ipv4.tcp_migrate_req=1 the kernel then moves connections still queued on it to the other
 * listeners of the group instead of resetting them. */
static void slot_close_listeners(struct slot *slot) {
    for (size_t i = 0; i < slot->pool->listen_fd_count; i++) {
        if (slot->owned[i])
            close(slot->listen_fds[i]);
        slot->owned[i] = false;
    }
}

static void slot_on_close(uv_handle_t *handle) {
    struct slot *slot = handle->data;
    free(slot);
}

static void slot_close(struct slot *slot) {
    slot_close_listeners(slot);
    uv_close((uv_handle_t *)&slot->restart_timer, slot_on_close);
}

/* The worker leaves its slot and drains on the pool's draining list. */
static void pool_detach_and_stop(struct pool *pool, struct worker *w, bool graceful) {
    w->slot = NULL;
    w->next = pool->draining;
    pool->draining = w;
    worker_stop(w, graceful);
}

static int pool_add_slots(struct pool *pool, unsigned target) {
    while (pool->slot_count < target) {
        struct slot *slot = slot_create(pool, (unsigned)pool->slot_count + 1);
        if (!slot) {
            log_error("pool_scale_failed", "out of memory creating worker slot %zu", pool->slot_count + 1);
            return -1;
        }
        pool->slots[pool->slot_count++] = slot;
        slot_start(slot);
    }
    return 0;
}

int pool_start(struct pool *pool, char *err, size_t err_size) {
    pool->target = pool->config->workers;
    if (pool->spawner->ops->start && pool->spawner->ops->start(pool->spawner, err, err_size) != 0)
        return -1;
    return pool_add_slots(pool, pool->target);
}

int pool_scale(struct pool *pool, unsigned target) {
    if (pool->stopping || target < 1 || target > pool->config->max_workers)
        return -1;
    unsigned previous = pool->target;
    pool->target = target;
    while (pool->slot_count > target) {
        struct slot *slot = pool->slots[--pool->slot_count];
        pool->slots[pool->slot_count] = NULL;
        uv_timer_stop(&slot->restart_timer);
        slot_close_listeners(slot);
        if (slot->successor)
            pool_detach_and_stop(pool, slot->successor, true);
        if (slot->active)
            pool_detach_and_stop(pool, slot->active, true);
        slot_close(slot);
    }
    int rc = pool_add_slots(pool, target);
    if (previous != target)
        log_info("pool_scaled", "workers %u -> %u", previous, target);
    pool_changed(pool);
    return rc;
}

/* ---- the reload: reload.c keeps its state, the pool decides over the slots ---- */

/* Begins a reload to the next generation (a running one is superseded). */
static void pool_reload_start(struct pool *pool) {
    pool->generation++;
    uint64_t bound = reload_bound_ms((unsigned)pool->slot_count, pool_surge(pool), pool->config->boot_timeout);
    reload_begin(&pool->reload, pool->generation, uv_now(pool->loop), bound, pool_surge(pool));
    if (pool->spawner && pool->spawner->ops->reload)
        pool->spawner->ops->reload(pool->spawner, pool->generation);
}

/* After any change (ready, exit, restart, scale): marks slots still on an older generation for
 * replacement and finishes the reload when every slot serves the new one. Returns true when the
 * reload finished just now. */
static bool pool_reload_check(struct pool *pool) {
    struct reload *r = &pool->reload;
    if (r->state != RELOAD_RUNNING)
        return false;
    bool done = true;
    for (size_t i = 0; i < pool->slot_count; i++) {
        struct slot *slot = pool->slots[i];
        const struct worker *w = slot->active;
        if (w && w->generation < r->generation) {
            slot_mark_replacement(slot, REPLACE_RELOAD);
            done = false;
        } else if (!w || w->state != WORKER_READY || slot->successor) {
            done = false;
        }
    }
    if (done)
        reload_finish(r, uv_now(pool->loop), pool_ready_count(pool), pool->target);
    return done;
}

/* Ends the running reload as failed; the workers that serve keep serving. */
static void pool_reload_fail(struct pool *pool, const char *reason) {
    if (!reload_fail(&pool->reload, uv_now(pool->loop), reason))
        return;
    pool_cancel_replacements(pool);
    reload_log_failure(&pool->reload, reason, pool_ready_count(pool), pool->target);
}

/* The reload's bound passed: it fails, naming the slots that are not done. */
static void pool_on_reload_deadline(void *data) {
    struct pool *pool = data;
    struct reload *r = &pool->reload;
    char reason[sizeof r->failure] = "";
    size_t used = 0;
    for (size_t i = 0; i < pool->slot_count && used < sizeof reason - 1; i++) {
        const struct slot *slot = pool->slots[i];
        const struct worker *w = slot->active;
        if (w && w->generation >= r->generation && w->state == WORKER_READY && !slot->successor)
            continue;
        int n = snprintf(reason + used, sizeof reason - used, "%sworker %u %s (last exit: %s)", used ? "; " : "",
                         slot->id, slot_state_name(slot), slot->last_exit);
        used = n > 0 ? used + (size_t)n : used;
    }
    char message[sizeof r->failure];
    snprintf(message, sizeof message, "not finished after %.0f s: %s", (double)(uv_now(pool->loop) - r->started_ms) / 1000,
             reason[0] ? reason : "workers still draining");
    pool_reload_fail(pool, message);
    pool->events.changed(pool);
}

void pool_reload(struct pool *pool) {
    if (pool->stopping)
        return;
    pool_reload_start(pool);
    pool_changed(pool);
}

unsigned pool_surge(const struct pool *pool) {
    if (pool->config->max_surge)
        return pool->config->max_surge;
    unsigned quarter = (pool->target + 3) / 4;
    return quarter ? quarter : 1;
}

void pool_cancel_replacements(struct pool *pool) {
    for (size_t i = 0; i < pool->slot_count; i++) {
        struct slot *slot = pool->slots[i];
        slot_mark_replacement(slot, REPLACE_NONE_CANCELLED);
        if (slot->successor) {
            struct worker *successor = slot->successor;
            slot->successor = NULL;
            pool_detach_and_stop(pool, successor, false);
        }
    }
}

int pool_recycle(struct pool *pool, unsigned slot_id) {
    struct slot *slot = pool_find_slot(pool, slot_id);
    if (!slot || pool->stopping)
        return -1;
    slot_mark_replacement(slot, REPLACE_RECYCLE);
    pool_changed(pool);
    return 0;
}

/* Starts overlapped replacements for the slots that want one, up to pool_surge() booting at once.
 * Callers report the change. */
static void pool_advance_replacements(struct pool *pool) {
    if (pool->stopping)
        return;
    unsigned booting = 0;
    for (size_t i = 0; i < pool->slot_count; i++)
        booting += pool->slots[i]->successor != NULL;
    for (size_t i = 0; i < pool->slot_count && booting < pool_surge(pool); i++) {
        struct slot *slot = pool->slots[i];
        if (!slot->replace_pending || slot->successor)
            continue;
        if (!slot->active) {
            slot_mark_replacement(slot, REPLACE_NONE_RESTARTING); /* restarting anyway, with the new generation */
            continue;
        }
        if (slot->active->state != WORKER_READY)
            continue; /* pool_worker_ready calls again */
        char err[512];
        slot->successor = pool_spawn_worker(pool, slot, err, sizeof err);
        if (slot->successor) {
            booting++;
            continue;
        }
        slot_mark_replacement(slot, REPLACE_NONE_CANCELLED);
        pool->replace_failures++;
        log_event(LOG_ERROR, "replace_failed", slot->id, slot->active->pid,
                  "cannot start a replacement (%s); the current worker keeps serving", err);
        char reason[256];
        snprintf(reason, sizeof reason, "the replacement for worker %u could not start: %.180s", slot->id, err);
        pool_reload_fail(pool, reason);
        return;
    }
}

/* After any change: let the reload look at the slots again, start what may start, tell the owner. */
static void pool_changed(struct pool *pool) {
    if (!pool->stopping) {
        bool finished = pool_reload_check(pool);
        pool_advance_replacements(pool);
        if (finished && pool->events.reload_finished)
            pool->events.reload_finished(pool);
    }
    pool->events.changed(pool);
}

struct slot *pool_find_slot(const struct pool *pool, unsigned slot_id) {
    return slot_id >= 1 && slot_id <= pool->slot_count ? pool->slots[slot_id - 1] : NULL;
}

unsigned pool_ready_count(const struct pool *pool) {
    unsigned ready = 0;
    for (size_t i = 0; i < pool->slot_count; i++)
        if (pool->slots[i]->active && pool->slots[i]->active->state == WORKER_READY)
            ready++;
    return ready;
}

unsigned pool_live_count(const struct pool *pool) {
    unsigned live = 0;
    for (size_t i = 0; i < pool->slot_count; i++)
        live += (pool->slots[i]->active != NULL) + (pool->slots[i]->successor != NULL);
    for (const struct worker *w = pool->draining; w; w = w->next)
        live++;
    return live;
}

unsigned pool_spawning_count(const struct pool *pool) {
    unsigned spawning = 0;
    for (size_t i = 0; i < pool->slot_count; i++) {
        const struct slot *slot = pool->slots[i];
        spawning += (slot->active && slot->active->state == WORKER_SPAWNING) +
                    (slot->successor && slot->successor->state == WORKER_SPAWNING);
    }
    return spawning;
}

/* Stopping ends when no worker and no process of the spawner's own is left. */
static bool pool_is_empty(const struct pool *pool) {
    return pool_live_count(pool) == 0 && (!pool->spawner || !pool->spawner->ops->live ||
                                          pool->spawner->ops->live(pool->spawner) == 0);
}

static void pool_spawner_changed(void *data) {
    struct pool *pool = data;
    if (pool->stopping && !pool->emptied && pool_is_empty(pool)) {
        pool->emptied = true;
        pool->events.empty(pool);
        return;
    }
    if (!pool->stopping)
        pool_changed(pool);
}

static void pool_worker_ready(struct worker *w, void *data) {
    struct pool *pool = data;
    struct slot *slot = w->slot;
    pool->ever_ready = true;
    log_event(LOG_INFO, "worker_ready", w->slot_id, w->pid, "ready in %llu ms (generation %u)",
              (unsigned long long)(w->ready_ms - w->started_ms), w->generation);
    if (slot && slot->successor == w) {
        struct worker *old = slot->active;
        slot->active = w;
        slot->successor = NULL;
        slot_mark_replacement(slot, REPLACE_NONE_REPLACED);
        if (old) {
            log_event(LOG_INFO, "worker_replaced", slot->id, old->pid, "replaced by pid %d; draining", w->pid);
            pool_detach_and_stop(pool, old, true);
        }
    }
    pool_changed(pool);
}

static void pool_worker_retire(struct worker *w, const char *reason, void *data) {
    struct pool *pool = data;
    struct slot *slot = w->slot;
    if (!slot || slot->active != w || pool->stopping)
        return;
    log_event(LOG_INFO, "worker_retire", w->slot_id, w->pid, "asked to be replaced (%s)", reason);
    slot_mark_replacement(slot, REPLACE_RETIRE);
    pool_changed(pool);
}

static bool pool_remove_draining(struct pool *pool, struct worker *w) {
    for (struct worker **p = &pool->draining; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            return true;
        }
    }
    return false;
}

/* Before the app has ever served, a boot failure is final: exit 3 (2 for a broken interpreter or a
 * worker that could not be started at all). */
static bool pool_fail_boot_if_never_ready(struct pool *pool, const struct worker *w, const struct slot *slot) {
    if (pool->ever_ready)
        return false;
    int code = 0;
    if (w->kill_reason == KILL_SPAWN_FAILED)
        code = w->exit_status == 3 ? 3 : 2;
    else if (!w->term_signal && w->exit_status == 3)
        code = 3;
    else if ((!w->term_signal && w->exit_status == 4) || w->kill_reason == KILL_PROTOCOL_MISMATCH)
        code = 2;
    else if (w->kill_reason == KILL_BOOT_TIMEOUT || backoff_is_crashloop(&slot->backoff))
        code = 3;
    if (!code)
        return false;
    if (w->kill_reason == KILL_SPAWN_FAILED)
        log_event(LOG_CRITICAL, "boot_failed", w->slot_id, w->pid, "no worker could be started (%s). Stopping",
                  w->spawn_error);
    else
        log_event(LOG_CRITICAL, "boot_failed", w->slot_id, w->pid,
                  code == 2 ? "the worker cannot run with --python %s (%s); see the message above"
                            : "the app failed to boot (%s); its traceback is above. Stopping",
                  code == 2 ? pool->config->python : slot->last_exit, slot->last_exit);
    pool->events.boot_failed(pool, code);
    return true;
}

static void pool_worker_exited(struct worker *w, void *data) {
    struct pool *pool = data;
    struct slot *slot = w->slot;
    char description[96];
    worker_describe_exit(w, description, sizeof description);
    pool->exits[classify_exit(w)]++;
    pool->requests_of_exited += w->requests;
    if (pool->board)
        board_release(pool->board, w->board_index); /* a crashed worker's gauges must not linger */
    w->board_index = 0;

    if (!slot) {
        pool_remove_draining(pool, w);
        log_event(w->kill_reason ? LOG_WARNING : LOG_INFO, "worker_exited", w->slot_id, w->pid, "stopped: %s", description);
    } else if (slot->successor == w) {
        slot->successor = NULL;
        snprintf(slot->last_exit, sizeof slot->last_exit, "%s", description);
        if (!pool->stopping && !w->stop_requested) {
            pool->replace_failures++;
            log_event(LOG_ERROR, "replace_failed", w->slot_id, w->pid,
                      "the replacement exited before it was ready (%s); the old workers keep serving", description);
            char reason[256];
            snprintf(reason, sizeof reason, "the new worker %u exited before it was ready (%s)", slot->id, description);
            if (reload_running(&pool->reload))
                pool_reload_fail(pool, reason);
            else
                slot_mark_replacement(slot, REPLACE_NONE_CANCELLED);
        }
    } else {
        slot->active = NULL;
        slot_mark_replacement(slot, REPLACE_NONE_RESTARTING); /* pool_reload_check re-marks an old one */
        snprintf(slot->last_exit, sizeof slot->last_exit, "%s", description);
        if (pool->stopping || w->stop_requested) {
            log_event(LOG_INFO, "worker_exited", w->slot_id, w->pid, "stopped: %s", description);
        } else {
            log_event(LOG_WARNING, "worker_died", w->slot_id, w->pid, "exited unexpectedly: %s", description);
            uint64_t ready_for = w->ready_ms ? uv_now(pool->loop) - w->ready_ms : 0;
            uint64_t delay = backoff_record_failure(&slot->backoff, ready_for);
            if (pool_fail_boot_if_never_ready(pool, w, slot))
                return;
            slot_schedule_restart(slot, delay);
        }
    }
    if (pool->stopping && pool_is_empty(pool)) {
        if (!pool->emptied) {
            pool->emptied = true;
            pool->events.empty(pool);
        }
        return;
    }
    pool_changed(pool);
}

void pool_stop(struct pool *pool, bool graceful) {
    bool first = !pool->stopping;
    pool->stopping = true;
    pool->graceful_stop = graceful;
    for (size_t i = 0; i < pool->slot_count; i++) {
        struct slot *slot = pool->slots[i];
        uv_timer_stop(&slot->restart_timer);
        slot_mark_replacement(slot, REPLACE_NONE_CANCELLED);
        if (slot->successor)
            worker_stop(slot->successor, graceful);
        if (slot->active)
            worker_stop(slot->active, graceful);
    }
    for (struct worker *w = pool->draining; w; w = w->next)
        worker_stop(w, graceful);
    if (first) {
        if (reload_running(&pool->reload))
            pool_reload_fail(pool, "the arbiter is stopping");
        uv_timer_stop(&pool->reload.deadline);
        if (pool->spawner && pool->spawner->ops->stop)
            pool->spawner->ops->stop(pool->spawner);
    }
    if (!pool->emptied && pool_is_empty(pool)) {
        pool->emptied = true;
        pool->events.empty(pool);
    }
}

void pool_close(struct pool *pool) {
    if (pool->spawner && pool->spawner->ops->close)
        pool->spawner->ops->close(pool->spawner);
    reload_close(&pool->reload);
    for (size_t i = 0; i < pool->slot_count; i++)
        slot_close(pool->slots[i]);
    pool->slot_count = 0;
    free(pool->slots);
    pool->slots = NULL;
}

/* ---- in-place upgrade: the pool handed from one arbiter image to the next ----
 * Every fd in the saved state sits under a key ending in "_fd" or "_fds": upgrade.c makes exactly
 * those inheritable across the exec. */

static json_t *slot_save(const struct slot *slot) {
    const struct pool *pool = slot->pool;
    json_t *owned = json_array();
    for (size_t i = 0; i < pool->listen_fd_count; i++)
        json_array_append_new(owned, json_integer(slot->owned[i] ? slot->listen_fds[i] : -1));
    json_t *saved = json_pack("{s:i, s:I, s:i, s:s, s:b, s:b, s:s, s:o, s:I}", "id", (int)slot->id, "restarts",
                              (json_int_t)slot->restarts, "failures", (int)slot->backoff.failures, "last_exit",
                              slot->last_exit, "replace_pending", slot->replace_pending, "spawn_failed",
                              slot->spawn_failed, "spawn_error", slot->spawn_error, "owned_listen_fds", owned,
                              "restart_in_ms",
                              uv_is_active((const uv_handle_t *)&slot->restart_timer)
                                  ? (json_int_t)uv_timer_get_due_in(&slot->restart_timer)
                                  : (json_int_t)-1);
    if (saved && slot->active)
        json_object_set_new(saved, "active", worker_save(slot->active));
    if (saved && slot->successor)
        json_object_set_new(saved, "successor", worker_save(slot->successor));
    return saved;
}

json_t *pool_save(const struct pool *pool) {
    /* "detached": the draining list's name in state version 1, which older images read. */
    json_t *slots = json_array(), *detached = json_array(), *exits = json_array();
    for (size_t i = 0; i < pool->slot_count; i++)
        json_array_append_new(slots, slot_save(pool->slots[i]));
    for (const struct worker *w = pool->draining; w; w = w->next)
        json_array_append_new(detached, worker_save(w));
    for (size_t r = 0; r < EXIT_REASON_COUNT; r++)
        json_array_append_new(exits, json_integer((json_int_t)pool->exits[r]));
    const struct reload *reload = &pool->reload;
    return json_pack("{s:i, s:i, s:b, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:{s:I, s:i, s:s, s:I, s:I, s:s}}", "target",
                     (int)pool->target, "generation", (int)pool->generation, "ever_ready", pool->ever_ready,
                     "spawned_total", (json_int_t)pool->spawned_total, "restarts_total",
                     (json_int_t)pool->restarts_total, "replace_failures", (json_int_t)pool->replace_failures,
                     "requests_of_exited", (json_int_t)pool->requests_of_exited, "exits", exits, "slots", slots,
                     "detached", detached, "reload", "id", (json_int_t)reload->id, "generation",
                     (int)reload->generation, "state", reload_state_name(reload->state), "started_total",
                     (json_int_t)reload->started_total, "failed_total", (json_int_t)reload->failed_total, "failure",
                     reload->failure);
}

static json_int_t saved_integer(json_t *object, const char *key) { return json_integer_value(json_object_get(object, key)); }

static int slot_restore(struct pool *pool, json_t *saved, char *err, size_t err_size) {
    unsigned id = (unsigned)saved_integer(saved, "id");
    if (id != pool->slot_count + 1 || id > pool->config->max_workers) {
        snprintf(err, err_size, "the upgrade state's slots are not numbered 1..N (found %u)", id);
        return -1;
    }
    struct slot *slot = calloc(1, sizeof *slot);
    if (!slot) {
        snprintf(err, err_size, "out of memory adopting slot %u", id);
        return -1;
    }
    slot->pool = pool;
    slot->id = id;
    slot->state = SLOT_BACKOFF;
    slot->restarts = (uint64_t)saved_integer(saved, "restarts");
    slot->backoff.failures = (unsigned)saved_integer(saved, "failures");
    slot_mark_replacement(slot, json_is_true(json_object_get(saved, "replace_pending")) ? REPLACE_RESTORED
                                                                                       : REPLACE_NONE_RESTORED);
    slot->spawn_failed = json_is_true(json_object_get(saved, "spawn_failed"));
    snprintf(slot->last_exit, sizeof slot->last_exit, "%s", json_string_value(json_object_get(saved, "last_exit")) ?: "none");
    snprintf(slot->spawn_error, sizeof slot->spawn_error, "%s", json_string_value(json_object_get(saved, "spawn_error")) ?: "");
    json_t *owned = json_object_get(saved, "owned_listen_fds");
    for (size_t i = 0; i < pool->listen_fd_count; i++) {
        json_int_t fd = json_integer_value(json_array_get(owned, i));
        slot->listen_fds[i] = fd >= 0 && json_is_integer(json_array_get(owned, i)) ? (int)fd : pool->listen_fds[i];
        slot->owned[i] = json_is_integer(json_array_get(owned, i)) && fd >= 0;
    }
    uv_timer_init(pool->loop, &slot->restart_timer);
    slot->restart_timer.data = slot;
    pool->slots[pool->slot_count++] = slot;
    json_t *active = json_object_get(saved, "active"), *successor = json_object_get(saved, "successor");
    if (active && !(slot->active = pool_restore_worker(pool, slot, active, err, err_size)))
        return -1;
    if (successor && !(slot->successor = pool_restore_worker(pool, slot, successor, err, err_size)))
        return -1;
    if (slot->active)
        slot->state = SLOT_RUNNING;
    else if (backoff_is_crashloop(&slot->backoff))
        slot->state = SLOT_CRASHLOOP;
    json_int_t restart_in = saved_integer(saved, "restart_in_ms");
    if (!slot->active && json_is_integer(json_object_get(saved, "restart_in_ms")) && restart_in >= 0)
        uv_timer_start(&slot->restart_timer, slot_on_restart_timer, (uint64_t)restart_in, 0);
    return 0;
}

int pool_restore(struct pool *pool, json_t *saved, char *err, size_t err_size) {
    pool->target = (unsigned)saved_integer(saved, "target");
    pool->generation = (unsigned)saved_integer(saved, "generation");
    pool->ever_ready = json_is_true(json_object_get(saved, "ever_ready"));
    pool->spawned_total = (uint64_t)saved_integer(saved, "spawned_total");
    pool->restarts_total = (uint64_t)saved_integer(saved, "restarts_total");
    pool->replace_failures = (uint64_t)saved_integer(saved, "replace_failures");
    pool->requests_of_exited = (uint64_t)saved_integer(saved, "requests_of_exited");
    json_t *exits = json_object_get(saved, "exits");
    for (size_t r = 0; r < EXIT_REASON_COUNT && r < json_array_size(exits); r++)
        pool->exits[r] = (uint64_t)json_integer_value(json_array_get(exits, r));
    json_t *reload = json_object_get(saved, "reload");
    pool->reload.id = (uint64_t)saved_integer(reload, "id");
    pool->reload.generation = (unsigned)saved_integer(reload, "generation");
    pool->reload.started_total = (uint64_t)saved_integer(reload, "started_total");
    pool->reload.failed_total = (uint64_t)saved_integer(reload, "failed_total");
    const char *state = json_string_value(json_object_get(reload, "state"));
    pool->reload.state = state && strcmp(state, "failed") == 0 ? RELOAD_FAILED
                         : state && strcmp(state, "done") == 0 ? RELOAD_DONE
                                                                : RELOAD_IDLE;
    snprintf(pool->reload.failure, sizeof pool->reload.failure, "%s",
             json_string_value(json_object_get(reload, "failure")) ?: "");
    if (pool->target < 1 || pool->target > pool->config->max_workers) {
        snprintf(err, err_size, "the upgrade state's target of %u workers is outside 1..%u (--max-workers)", pool->target,
                 pool->config->max_workers);
        return -1;
    }
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(saved, "slots"), i, item) {
        if (slot_restore(pool, item, err, err_size) != 0)
            return -1;
    }
    json_array_foreach(json_object_get(saved, "detached"), i, item) {
        struct worker *w = pool_restore_worker(pool, NULL, item, err, err_size);
        if (!w)
            return -1;
        w->next = pool->draining;
        pool->draining = w;
    }
    return 0;
}

/* The end of a graceful stop's lame duck with --reuse-port: the arbiter closes the per-slot
 * listeners it holds, so once the workers have closed their copies the kernel refuses new clients
 * instead of queueing them on a socket nobody accepts from. */
void pool_close_listeners(struct pool *pool) {
    for (size_t i = 0; i < pool->slot_count; i++)
        slot_close_listeners(pool->slots[i]);
}

void pool_walk(struct pool *pool, bool with_empty_slots, pool_visit_fn *visit, void *data) {
    for (size_t i = 0; i < pool->slot_count; i++) {
        struct slot *slot = pool->slots[i];
        if (slot->active || with_empty_slots)
            visit(slot->active, slot, data);
        if (slot->successor)
            visit(slot->successor, NULL, data);
    }
    for (struct worker *w = pool->draining; w; w = w->next)
        visit(w, NULL, data);
}
