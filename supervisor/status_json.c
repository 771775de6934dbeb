/* status_json.c - the reply of `ctl status` (and the "autoscale" object `ctl autoscale` answers),
 * built from the census (status.h). The fields are a public interface: control_commands.h lists
 * them, and tests/integration/test_control.py holds them to it. */
#include "status_json.h"

#include <unistd.h>

#include "version.h"

struct worker_list {
    json_t *workers;
    unsigned generation; /* the pool's: what a slot without a worker is on */
};

static void add_worker(const struct status_worker *view, void *data) {
    struct worker_list *list = data;
    const struct worker *w = view->worker;
    const struct slot *slot = view->slot;
    const struct proc_stats *stats = view->stats;
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(view->id));
    json_object_set_new(o, "pid", w ? json_integer(w->pid) : json_null());
    json_object_set_new(o, "state", json_string(view->state));
    json_object_set_new(o, "generation", json_integer(w ? w->generation : list->generation));
    json_object_set_new(o, "uptime_s", json_real(view->uptime_s));
    json_object_set_new(o, "requests", json_integer(w ? (json_int_t)w->requests : 0));
    json_object_set_new(o, "in_flight", json_integer(w ? (json_int_t)w->in_flight : 0));
    json_object_set_new(o, "connections", json_integer(view->entry ? (json_int_t)view->entry->connections : 0));
    json_object_set_new(o, "restarts", json_integer(slot ? (json_int_t)slot->restarts : 0));
    json_object_set_new(o, "last_exit", slot ? json_string(slot->last_exit) : json_null());
    json_object_set_new(o, "memory_rss_bytes", json_integer((json_int_t)stats->rss_bytes));
    json_object_set_new(o, "memory_pss_bytes", json_integer((json_int_t)stats->pss_bytes));
    json_object_set_new(o, "memory_shared_bytes", json_integer((json_int_t)stats->shared_bytes));
    json_object_set_new(o, "memory_private_bytes", json_integer((json_int_t)stats->private_bytes));
    json_object_set_new(o, "cpu_seconds", json_real(stats->cpu_seconds));
    json_array_append_new(list->workers, o);
}

/* --preload: the zygote serving now; null without --preload (and between a death and its restart). */
static json_t *zygote_json(const struct status_sources *sources, const struct zygote *z) {
    if (!z)
        return json_null();
    return json_pack("{s:i, s:i, s:s, s:f, s:I, s:I, s:I, s:I}", "pid", z->pid, "generation", (int)z->generation, "state",
                     zygote_state_name(z->state), "import_seconds", z->import_seconds, "memory_pss_bytes",
                     (json_int_t)z->stats.pss_bytes, "memory_rss_bytes", (json_int_t)z->stats.rss_bytes, "forks",
                     (json_int_t)z->forks, "restarts", (json_int_t)sources->fork_server->zygote_restarts);
}

static json_t *reload_json(const struct reload *reload) {
    return json_pack("{s:s, s:i, s:s?}", "state", reload_state_name(reload->state), "generation", (int)reload->generation,
                     "failure", reload->state == RELOAD_FAILED ? reload->failure : NULL);
}

static void add_image(json_t *status, const struct upgrade *u) {
    json_object_set_new(status, "build", json_string(u->build));
    json_object_set_new(status, "upgrades", json_integer(u->upgrades));
    json_object_set_new(status, "upgraded_at", u->upgraded_at > 0 ? json_real(u->upgraded_at) : json_null());
    json_object_set_new(status, "previous_version", u->upgrades ? json_string(u->previous_version) : json_null());
    json_object_set_new(status, "previous_build", u->upgrades ? json_string(u->previous_build) : json_null());
}

json_t *status_json(const struct status_sources *sources, const struct autoscale *autoscale) {
    const struct pool *pool = sources->pool;
    struct status_census census;
    status_take_census(sources, &census);
    struct worker_list list = {json_array(), pool->generation};
    status_walk(sources, true, add_worker, &list);
    json_t *listeners = json_array();
    for (size_t i = 0; i < sources->listeners->count; i++)
        json_array_append_new(listeners, json_string(sources->listeners->items[i].name));
    const struct config *c = sources->config;
    json_t *status = json_pack("{s:b, s:i, s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:f, s:I, s:I, s:o, s:o}", "ok", 1, "pid",
                               (int)getpid(), "name", c->name, "version", ARBITER_VERSION, "app", c->app, "state",
                               census.state, "target_workers", (int)census.target, "ready_workers", (int)census.ready,
                               "generation", (int)pool->generation, "uptime_s", census.uptime_s, "reloads",
                               (json_int_t)pool->reload.started_total, "restarts", (json_int_t)pool->restarts_total,
                               "listeners", listeners, "workers", list.workers);
    json_object_set_new(status, "spawner", json_string(pool->spawner ? pool->spawner->ops->name : "exec"));
    json_object_set_new(status, "zygote", zygote_json(sources, census.zygote));
    json_object_set_new(status, "reload", reload_json(&pool->reload));
    json_object_set_new(status, "orphans_reaped", json_integer((json_int_t)sources->reaper->orphans_reaped));
    json_object_set_new(status, "balance", json_string(balance_mode_name(c->balance)));
    json_object_set_new(status, "autoscale", autoscale_json(autoscale));
    add_image(status, sources->upgrade);
    return status;
}

json_t *autoscale_json(const struct autoscale *s) {
    const struct autoscale_policy *p = &s->policy;
    unsigned blocked = 0, up = 0, down = 0;
    for (int reason = 0; reason < AUTOSCALE_REASON_COUNT; reason++) {
        up += (unsigned)s->decisions[AUTOSCALE_UP][reason];
        down += (unsigned)s->decisions[AUTOSCALE_DOWN][reason];
        blocked += (unsigned)s->decisions[AUTOSCALE_BLOCKED][reason];
    }
    json_t *last = json_null();
    if (s->last.at_ms) {
        double ago = (double)(uv_hrtime() / 1000000u - s->last.at_ms) / 1000.0; /* the clock decide() is given */
        last = json_pack("{s:s, s:s, s:i, s:i, s:f, s:f, s:f, s:f}", "action", autoscale_action_name(s->last.action),
                         "reason", autoscale_reason_name(s->last.reason), "from", (int)s->last.from, "to",
                         (int)s->last.to, "seconds_ago", ago, "queue", s->last.queue, "busy", s->last.busy, "lag_s",
                         s->last.lag_s);
    }
    uint64_t now = uv_hrtime() / 1000000u;
    double low_for = s->trend.low_since_ms && now > s->trend.low_since_ms ? (double)(now - s->trend.low_since_ms) / 1000.0 : 0;
    return json_pack("{s:b, s:i, s:i, s:f, s:{s:f, s:f, s:f, s:I}, s:{s:i, s:i, s:i}, s:o}", "enabled", p->enabled, "min",
                     (int)p->min, "max", (int)p->max, "low_for_s", low_for, "signals", "queue", s->trend.queue, "busy",
                     s->trend.busy, "lag_s", s->trend.lag_s, "memory_pss_bytes", (json_int_t)s->sample.memory,
                     "decisions", "up", (int)up, "down", (int)down, "blocked", (int)blocked, "last_decision", last);
}
