/* status.c - the read model (status.h): the census of workers, zygote, reload and counts.
 *
 * Every reader walks the live workers through status_walk, which is pool_walk with each worker
 * described once: its bucket, the state name status shows, its uptime, /proc figures and board
 * entry. The totals are folded from that same walk, so /metrics, `ctl status` and the autoscaler
 * count exactly the same workers. */
#include "status.h"

#include <stdio.h>
#include <string.h>

static const char *const bucket_names[STATUS_BUCKET_COUNT] = {"booting", "ready", "draining", "backoff", "crashloop"};

const char *status_bucket_name(enum status_bucket bucket) {
    return bucket < STATUS_BUCKET_COUNT ? bucket_names[bucket] : "invalid";
}

const char *status_state_name(const struct status_sources *sources) {
    enum arbiter_state state = *sources->state;
    if (state == ARBITER_RUNNING && reload_running(&sources->pool->reload))
        return "reloading";
    static const char *const names[] = {"starting", "running", "stopping"};
    return names[state];
}

struct walk {
    const struct status_sources *sources;
    status_visit_fn *visit;
    void *data;
    uint64_t now;
};

static void describe(struct worker *w, const struct slot *slot, void *data) {
    const struct walk *walk = data;
    static const struct proc_stats none;
    struct status_worker view = {.worker = w, .slot = slot, .stats = &none};
    if (!w) { /* a slot without a worker: in backoff, or given up (crashloop) */
        view.id = slot->id;
        view.bucket = slot->state == SLOT_CRASHLOOP ? STATUS_CRASHLOOP : STATUS_BACKOFF;
        view.state = slot_state_name(slot);
        walk->visit(&view, walk->data);
        return;
    }
    view.id = slot ? slot->id : w->slot_id;
    view.bucket = w->state == WORKER_READY ? STATUS_READY : w->state == WORKER_DRAINING ? STATUS_DRAINING : STATUS_BOOTING;
    view.state = worker_state_name(w->state);
    view.uptime_s = (double)(walk->now - w->started_ms) / 1000.0;
    view.stats_known = w->stats_ms != 0;
    if (view.stats_known)
        view.stats = &w->stats;
    view.entry = walk->sources->board ? board_get(walk->sources->board, w->board_index) : NULL;
    walk->visit(&view, walk->data);
}

void status_walk(const struct status_sources *sources, bool with_empty_slots, status_visit_fn *visit, void *data) {
    struct walk walk = {sources, visit, data, uv_now(sources->loop)};
    pool_walk(sources->pool, with_empty_slots, describe, &walk);
}

static void count(const struct status_worker *view, void *data) {
    struct status_census *census = data;
    census->buckets[view->bucket]++;
    if (!view->worker)
        return;
    census->live++;
    census->ready += view->slot && view->bucket == STATUS_READY; /* a slot's active worker that serves */
    census->requests += view->worker->requests;
    census->in_flight += view->worker->in_flight;
}

void status_take_census(const struct status_sources *sources, struct status_census *out) {
    memset(out, 0, sizeof *out);
    const struct pool *pool = sources->pool;
    out->state = status_state_name(sources);
    out->target = pool->target;
    out->requests = pool->requests_of_exited;
    out->uptime_s = (double)(uv_now(sources->loop) - *sources->started_ms) / 1000.0;
    out->zygote = sources->fork_server ? fork_server_zygote(sources->fork_server) : NULL;
    status_walk(sources, true, count, out);
}

int status_health(const struct status_sources *sources, char *reason, size_t size) {
    unsigned ready = pool_ready_count(sources->pool), target = sources->pool->target;
    if (*sources->state == ARBITER_STOPPING) {
        snprintf(reason, size, "stopping: draining, take this node out of rotation");
        return 503;
    }
    if (ready < sources->config->min_ready) {
        snprintf(reason, size, "%u/%u workers ready, fewer than --min-ready %u", ready, target, sources->config->min_ready);
        return 503;
    }
    snprintf(reason, size, "ok: %u/%u workers ready", ready, target);
    return 200;
}
