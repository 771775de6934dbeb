/* reload.c - rolling reloads: what is left, when it is done, when it has failed.
 *
 * A reload gives the pool a new generation; every slot whose worker is older is marked for an
 * overlapped replacement, which pool.c carries out up to --max-surge at a time. Progress is not
 * tracked by counting events: after every change in the pool (a worker ready, an exit, a restart,
 * a scale) reload_check() looks at the slots again, so a slot that restarted with the new code
 * counts as done, a worker already on the new generation is never replaced twice, and a slot that
 * is booting or crash-looping simply keeps the reload open — until the deadline, which bounds every
 * reload: then it fails with the reason, and whoever serves keeps serving. */
#include "reload.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "pool.h"

const char *reload_state_name(enum reload_state state) {
    static const char *const names[] = {"idle", "running", "done", "failed"};
    return state <= RELOAD_FAILED ? names[state] : "invalid";
}

bool reload_running(const struct reload *reload) { return reload->state == RELOAD_RUNNING; }

bool reload_joins(const struct reload *reload, uint64_t now_ms) {
    return reload_running(reload) && now_ms >= reload->last_request_ms && now_ms - reload->last_request_ms < RELOAD_JOIN_MS;
}

void reload_join(struct reload *reload, uint64_t now_ms, const char *why) {
    reload->joined++;
    reload->last_request_ms = now_ms;
    log_debug("reload_joined", "reload (%s) joins the reload to generation %u: less than %.1f s after the previous "
              "request", why, reload->generation, RELOAD_JOIN_MS / 1000.0);
}

uint64_t reload_bound_ms(unsigned slots, unsigned surge, double boot_timeout) {
    double round_ms = boot_timeout > 0 ? boot_timeout * 1000.0 : 600000.0;
    unsigned rounds = surge ? (slots + surge - 1) / surge : slots;
    if (rounds == 0)
        rounds = 1;
    return (uint64_t)((double)(rounds + 1) * round_ms) + 5000u;
}

static void reload_on_deadline(uv_timer_t *timer) {
    struct pool *pool = timer->data;
    struct reload *r = &pool->reload;
    if (r->state != RELOAD_RUNNING)
        return;
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
    reload_fail(pool, message);
    pool->events.changed(pool);
}

void reload_init(struct reload *reload, uv_loop_t *loop) {
    uv_timer_init(loop, &reload->deadline);
}

void reload_close(struct reload *reload) {
    if (reload->deadline.loop && !uv_is_closing((uv_handle_t *)&reload->deadline))
        uv_close((uv_handle_t *)&reload->deadline, NULL); /* embedded in struct pool */
}

void reload_start(struct pool *pool) {
    struct reload *r = &pool->reload;
    pool->generation++;
    r->state = RELOAD_RUNNING;
    r->id++;
    r->generation = pool->generation;
    r->queued = false;
    r->started_ms = r->last_request_ms = uv_now(pool->loop);
    r->finished_ms = 0;
    r->failure[0] = '\0';
    r->joined = 0;
    r->started_total++;
    r->deadline.data = pool;
    uint64_t bound = reload_bound_ms((unsigned)pool->slot_count, pool_surge(pool), pool->config->boot_timeout);
    uv_timer_start(&r->deadline, reload_on_deadline, bound, 0);
    log_info("reload_started", "rolling reload to generation %u: up to %u worker%s at a time, each replaced once its "
             "successor is ready (bound %.0f s)", r->generation, pool_surge(pool), pool_surge(pool) == 1 ? "" : "s",
             (double)bound / 1000);
    if (pool->spawner && pool->spawner->ops->reload)
        pool->spawner->ops->reload(pool->spawner, r->generation);
}

bool reload_check(struct pool *pool) {
    struct reload *r = &pool->reload;
    if (r->state != RELOAD_RUNNING)
        return false;
    bool done = true;
    for (size_t i = 0; i < pool->slot_count; i++) {
        struct slot *slot = pool->slots[i];
        const struct worker *w = slot->active;
        if (w && w->generation < r->generation) {
            slot->replace_pending = true;
            done = false;
        } else if (!w || w->state != WORKER_READY || slot->successor) {
            done = false;
        }
    }
    if (!done)
        return false;
    r->state = RELOAD_DONE;
    r->finished_ms = uv_now(pool->loop);
    uv_timer_stop(&r->deadline);
    char joined[64] = "";
    if (r->joined)
        snprintf(joined, sizeof joined, " (%u more request%s joined it)", r->joined, r->joined == 1 ? "" : "s");
    log_info("reload_done", "reload to generation %u finished in %llu ms; %u/%u workers ready%s", r->generation,
             (unsigned long long)(r->finished_ms - r->started_ms), pool_ready_count(pool), pool->target, joined);
    return true;
}

void reload_fail(struct pool *pool, const char *reason) {
    struct reload *r = &pool->reload;
    if (r->state != RELOAD_RUNNING)
        return;
    r->state = RELOAD_FAILED;
    r->failed_total++;
    r->finished_ms = uv_now(pool->loop);
    snprintf(r->failure, sizeof r->failure, "%s", reason);
    uv_timer_stop(&r->deadline);
    pool_cancel_replacements(pool);
    log_error("reload_failed", "reload to generation %u failed after %llu ms: %s; %u/%u workers keep serving",
              r->generation, (unsigned long long)(r->finished_ms - r->started_ms), reason, pool_ready_count(pool),
              pool->target);
}
