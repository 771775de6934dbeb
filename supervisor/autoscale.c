/* autoscale.c - the worker count follows the load, between --autoscale MIN and MAX.
 *
 * The running half (autoscale.h): every AUTOSCALE_TICK_MS it samples status.c's read model (the
 * census, the workers' board entries and stats, the listeners' accept queues), hands the sample to
 * autoscale_decide (autoscale_policy.c, where the policy is described) and applies what it says
 * through pool_scale. Every change and the first of a run of blocked decisions is logged with its
 * reason and the signals, and counted (/metrics, `ctl status`). */
#define _GNU_SOURCE
#include "autoscale.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"
#include "log.h"

/* ---- sampling ---- */

static uint64_t monotonic_ms(void) { return uv_hrtime() / 1000000u; }

/* Connections waiting in a listener's accept queue; 0 where the kernel does not say (unix:). */
static unsigned queue_length(int fd) {
    unsigned waiting, size;
    return listener_queue(fd, &waiting, &size) == 0 ? waiting : 0;
}

static unsigned pool_queue(const struct status_sources *sources) {
    const struct pool *pool = sources->pool;
    unsigned total = 0;
    if (!sources->config->reuse_port) {
        for (size_t i = 0; i < sources->listeners->count; i++)
            total += queue_length(sources->listeners->items[i].fd);
        return total;
    }
    for (size_t s = 0; s < pool->slot_count; s++)
        for (size_t i = 0; i < pool->listen_fd_count; i++)
            total += queue_length(pool->slots[s]->listen_fds[i]);
    return total;
}

struct sampling {
    struct autoscale_signals *out;
    bool booting;
    unsigned busy, sampled;
    double lag;
    uint64_t now;
};

static void sample_worker(const struct status_worker *view, void *data) {
    struct sampling *sampling = data;
    struct autoscale_signals *out = sampling->out;
    const struct worker *w = view->worker;
    if (view->stats_known)
        out->memory += view->stats->pss_bytes;
    /* A slot in backoff is not a change under way: a crash loop must not freeze autoscaling. A
     * successor (still in its slot), or a slot's worker not ready yet, is. Draining workers only
     * cost memory. */
    if (!view->slot) {
        sampling->booting |= w->slot != NULL;
        return;
    }
    if (w->state != WORKER_READY) {
        sampling->booting = true;
        return;
    }
    if (view->stats_known && view->stats->pss_bytes > out->worker_memory)
        out->worker_memory = view->stats->pss_bytes;
    sampling->sampled++;
    if (view->entry) {
        sampling->busy += view->entry->in_flight > 0;
        sampling->lag += board_lag_seconds(view->entry, sampling->now);
    } else {
        sampling->busy += w->in_flight > 0; /* no board entry: the last heartbeat's figure */
    }
}

static void autoscale_sample(const struct autoscale *s, struct autoscale_signals *out) {
    const struct status_sources *sources = s->sources;
    memset(out, 0, sizeof *out);
    struct status_census census;
    status_take_census(sources, &census);
    out->target = census.target;
    out->ready = census.ready;
    struct sampling sampling = {.out = out, .now = monotonic_ms()};
    status_walk(sources, false, sample_worker, &sampling);
    if (census.zygote)
        out->memory += census.zygote->stats.pss_bytes;
    out->settled = *sources->state == ARBITER_RUNNING && !sampling.booting && !reload_running(&sources->pool->reload);
    out->queue = pool_queue(sources);
    out->busy = sampling.sampled ? (double)sampling.busy / sampling.sampled : 0;
    out->lag_s = sampling.sampled ? sampling.lag / sampling.sampled : 0;
}

/* ---- applying ---- */

static void autoscale_report(struct autoscale *s, const struct autoscale_decision *d) {
    const struct autoscale_policy *p = &s->policy;
    s->decisions[d->action][d->reason]++;
    s->last = *d;
    char why[160];
    switch (d->reason) {
    case AUTOSCALE_REASON_QUEUE: snprintf(why, sizeof why, "%.1f connections waiting >= %g (--autoscale-queue)", d->queue, p->queue); break;
    case AUTOSCALE_REASON_BUSY: snprintf(why, sizeof why, "busy %.2f >= %.2f (--autoscale-busy)", d->busy, p->busy); break;
    case AUTOSCALE_REASON_LAG: snprintf(why, sizeof why, "event-loop lag %.3f s >= %.3f s (--autoscale-lag)", d->lag_s, p->lag_s); break;
    case AUTOSCALE_REASON_IDLE: snprintf(why, sizeof why, "low load for %g s (--autoscale-idle)", p->idle_s); break;
    case AUTOSCALE_REASON_BOUNDS: snprintf(why, sizeof why, "outside --autoscale %u:%u", p->min, p->max); break;
    case AUTOSCALE_REASON_MAX: snprintf(why, sizeof why, "under pressure but already at MAX %u", p->max); break;
    case AUTOSCALE_REASON_MEMORY:
        snprintf(why, sizeof why, "total PSS %.1f MiB, one more worker ~%.1f MiB, ceiling %.1f MiB (--autoscale-max-memory)",
                 (double)d->signals.memory / 1048576, (double)d->signals.worker_memory / 1048576, (double)p->max_memory / 1048576);
        break;
    default: snprintf(why, sizeof why, "no reason"); break;
    }
    const char *event = d->action == AUTOSCALE_UP ? "autoscale_up" : d->action == AUTOSCALE_DOWN ? "autoscale_down" : "autoscale_blocked";
    log_event(d->action == AUTOSCALE_BLOCKED ? LOG_WARNING : LOG_INFO, event, 0, 0,
              "%s %u -> %u workers: %s [queue %.1f, busy %.2f, lag %.3f s, memory %.1f MiB]",
              d->action == AUTOSCALE_BLOCKED ? "cannot scale" : "autoscale", d->from,
              d->action == AUTOSCALE_BLOCKED ? d->from : d->to, why, d->queue, d->busy, d->lag_s,
              (double)d->signals.memory / 1048576);
}

static void autoscale_on_tick(uv_timer_t *timer) {
    struct autoscale *s = timer->data;
    if (*s->sources->state == ARBITER_STOPPING)
        return;
    autoscale_sample(s, &s->sample);
    struct autoscale_decision d = autoscale_decide(&s->policy, &s->trend, &s->sample, monotonic_ms());
    if (!d.report)
        return;
    autoscale_report(s, &d);
    if (d.action == AUTOSCALE_UP || d.action == AUTOSCALE_DOWN) {
        if (pool_scale(s->sources->pool, d.to) != 0)
            log_error("autoscale_failed", "could not scale to %u workers; see the messages above", d.to);
    }
}

void autoscale_start(struct autoscale *s, const struct status_sources *sources, const struct autoscale_policy *policy) {
    memset(s, 0, sizeof *s);
    s->sources = sources;
    s->policy = *policy;
    uv_timer_init(sources->loop, &s->timer);
    s->timer.data = s;
    s->timer_open = true;
    if (s->policy.enabled) {
        log_info("autoscale", "autoscaling between %u and %u workers", s->policy.min, s->policy.max);
        uv_timer_start(&s->timer, autoscale_on_tick, AUTOSCALE_TICK_MS, AUTOSCALE_TICK_MS);
    }
}

void autoscale_enable(struct autoscale *s, unsigned min, unsigned max, const char *why) {
    s->policy.enabled = true;
    s->policy.min = min;
    s->policy.max = max;
    memset(&s->trend, 0, sizeof s->trend);
    log_info("autoscale", "autoscaling between %u and %u workers (%s)", min, max, why);
    if (s->timer_open)
        uv_timer_start(&s->timer, autoscale_on_tick, 0, AUTOSCALE_TICK_MS); /* bounds apply at once */
}

void autoscale_disable(struct autoscale *s, const char *why) {
    if (!s->policy.enabled)
        return;
    s->policy.enabled = false;
    if (s->timer_open)
        uv_timer_stop(&s->timer);
    log_info("autoscale_off", "autoscaling off (%s); the worker count stays at %u until changed by hand", why,
             s->sources->pool->target);
}

void autoscale_stop(struct autoscale *s) {
    if (s->timer_open)
        uv_timer_stop(&s->timer);
}

void autoscale_close(struct autoscale *s) {
    if (!s->timer_open)
        return;
    s->timer_open = false;
    uv_close((uv_handle_t *)&s->timer, NULL); /* embedded in struct autoscale */
}
