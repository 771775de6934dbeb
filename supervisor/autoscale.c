/* autoscale.c - the worker count follows the load, between --autoscale MIN and MAX.
 *
 * Policy (every number a flag; see autoscale.h):
 * - Up, fast: when connections wait in the accept queue, (nearly) every worker has a request in
 *   flight, or the event loops run late, averaged over about --autoscale-up-after (1 s), the pool
 *   grows by half (at least one worker). The next step up waits until the new workers are ready and
 *   another --autoscale-up-after has passed, so a step is judged on what it achieved.
 * - Down, slow: after --autoscale-idle (60 s) of low load — no queue, lag under half the threshold,
 *   and a busy fraction that would stay under 2/3 of the threshold with one worker fewer — one
 *   worker is removed through pool_scale, which drains it (zero failed requests). The next removal
 *   needs another --autoscale-idle of low load.
 * - Limits: never above MAX, never below MIN, never above --autoscale-max-memory of total PSS: a
 *   step up adds only as many workers as fit (the largest ready worker's PSS is the estimate), and
 *   a pool whose workers grew past the ceiling gives one back at a time.
 *
 * Signals are smoothed with an exponential moving average whose time constant is half of
 * --autoscale-up-after, and for the decision each sample counts at most twice its threshold, so a
 * single slow request or burst of connections does not add a worker and a real step in load does
 * within about a second. Decisions wait while the pool is changing (workers booting, a reload). Every
 * change and the first of a run of blocked decisions is logged with its reason and the signals, and
 * counted (/metrics, `ctl status`). */
#define _GNU_SOURCE
#include "autoscale.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"
#include "log.h"

const char *autoscale_action_name(enum autoscale_action action) {
    static const char *const names[AUTOSCALE_ACTION_COUNT] = {"hold", "up", "down", "blocked"};
    return action < AUTOSCALE_ACTION_COUNT ? names[action] : "unknown";
}

const char *autoscale_reason_name(enum autoscale_reason reason) {
    static const char *const names[AUTOSCALE_REASON_COUNT] = {"none", "queue",  "busy", "lag",
                                                               "idle", "bounds", "max",  "memory"};
    return reason < AUTOSCALE_REASON_COUNT ? names[reason] : "unknown";
}

int autoscale_parse_range(const char *text, unsigned limit, unsigned *min, unsigned *max, char *err, size_t err_size) {
    char *colon;
    errno = 0;
    unsigned long low = strtoul(text, &colon, 10);
    const char *high_text = *colon == ':' ? colon + 1 : NULL;
    char *end = NULL;
    unsigned long high = high_text ? strtoul(high_text, &end, 10) : 0;
    if (errno || !high_text || colon == text || !*high_text || *end || text[0] == '-' || high_text[0] == '-' ||
        text[0] == '+' || high_text[0] == '+') {
        snprintf(err, err_size, "'%s' is not MIN:MAX, e.g. 2:8", text);
        return -1;
    }
    if (low < 1) {
        snprintf(err, err_size, "'%s': MIN must be at least 1", text);
        return -1;
    }
    if (low > high) {
        snprintf(err, err_size, "'%s': MIN is more than MAX", text);
        return -1;
    }
    if (high > limit) {
        snprintf(err, err_size, "'%s': MAX is more than %u (--max-workers)", text, limit);
        return -1;
    }
    *min = (unsigned)low;
    *max = (unsigned)high;
    return 0;
}

/* ---- the decision (pure) ---- */

static double smooth(double average, double sample, double alpha) { return average + alpha * (sample - average); }

static double cap(double sample, double threshold) { return sample < 2 * threshold ? sample : 2 * threshold; }

static bool under_pressure(const struct autoscale_policy *p, const struct autoscale_trend *t, enum autoscale_reason *why) {
    if (t->queue_capped >= p->queue)
        *why = AUTOSCALE_REASON_QUEUE;
    else if (t->busy >= p->busy)
        *why = AUTOSCALE_REASON_BUSY;
    else if (t->lag_capped >= p->lag_s)
        *why = AUTOSCALE_REASON_LAG;
    else
        return false;
    return true;
}

/* Low enough that one worker fewer would still not be under pressure, with room to spare. */
static bool load_is_low(const struct autoscale_policy *p, const struct autoscale_trend *t, unsigned target) {
    if (t->queue >= p->queue / 4 || t->lag_s >= p->lag_s / 2)
        return false;
    if (target <= 1)
        return true;
    return t->busy * target / (target - 1) < p->busy * 2 / 3;
}

struct autoscale_decision autoscale_decide(const struct autoscale_policy *p, struct autoscale_trend *t,
                                           const struct autoscale_signals *s, uint64_t now_ms) {
    struct autoscale_decision d = {.action = AUTOSCALE_HOLD, .from = s->target, .to = s->target, .signals = *s, .at_ms = now_ms};

    double tau_ms = p->up_after_s * 500.0;
    double alpha = t->primed && now_ms > t->last_ms && tau_ms > 0 ? 1 - exp(-(double)(now_ms - t->last_ms) / tau_ms) : 1.0;
    if (!t->primed || now_ms > t->last_ms) {
        t->queue = smooth(t->queue, s->queue, alpha);
        t->busy = smooth(t->busy, s->busy, alpha);
        t->lag_s = smooth(t->lag_s, s->lag_s, alpha);
        t->queue_capped = smooth(t->queue_capped, cap(s->queue, p->queue), alpha);
        t->lag_capped = smooth(t->lag_capped, cap(s->lag_s, p->lag_s), alpha);
        t->last_ms = now_ms;
        t->primed = true;
    }
    d.queue = t->queue;
    d.busy = t->busy;
    d.lag_s = t->lag_s;

    if (!s->settled) {
        t->settled_since_ms = 0;
        t->low_since_ms = 0;
        return d;
    }
    if (!t->settled_since_ms)
        t->settled_since_ms = now_ms;
    if (!p->enabled)
        return d;

    bool was_blocked = t->blocked;
    t->blocked = false;
    if (s->target < p->min || s->target > p->max) {
        d.action = s->target < p->min ? AUTOSCALE_UP : AUTOSCALE_DOWN;
        d.reason = AUTOSCALE_REASON_BOUNDS;
        d.to = s->target < p->min ? p->min : p->max;
        d.report = true;
        t->low_since_ms = 0;
        return d;
    }
    bool cooled = now_ms - t->settled_since_ms >= (uint64_t)(p->up_after_s * 1000);

    enum autoscale_reason why = AUTOSCALE_REASON_NONE;
    if (under_pressure(p, t, &why)) {
        t->low_since_ms = 0;
        if (!cooled)
            return d;
        unsigned step = (s->target + 1) / 2;
        unsigned to = s->target + (step ? step : 1);
        if (to > p->max)
            to = p->max;
        d.reason = why;
        if (p->max_memory && s->worker_memory) {
            uint64_t room = p->max_memory > s->memory ? p->max_memory - s->memory : 0;
            uint64_t fit = room / s->worker_memory;
            if (to - s->target > fit)
                to = s->target + (unsigned)fit;
            if (to == s->target)
                d.reason = AUTOSCALE_REASON_MEMORY;
        }
        if (s->target >= p->max)
            d.reason = AUTOSCALE_REASON_MAX;
        if (to == s->target) {
            d.action = AUTOSCALE_BLOCKED;
            t->blocked = true;
            d.report = !was_blocked;
            return d;
        }
        d.action = AUTOSCALE_UP;
        d.to = to;
        d.report = true;
        return d;
    }

    if (p->max_memory && s->memory > p->max_memory && s->target > p->min && cooled) {
        d.action = AUTOSCALE_DOWN;
        d.reason = AUTOSCALE_REASON_MEMORY;
        d.to = s->target - 1;
        d.report = true;
        t->low_since_ms = 0;
        return d;
    }

    if (!load_is_low(p, t, s->target)) {
        t->low_since_ms = 0;
        return d;
    }
    if (!t->low_since_ms)
        t->low_since_ms = now_ms;
    if (s->target > p->min && now_ms - t->low_since_ms >= (uint64_t)(p->idle_s * 1000)) {
        d.action = AUTOSCALE_DOWN;
        d.reason = AUTOSCALE_REASON_IDLE;
        d.to = s->target - 1;
        d.report = true;
        t->low_since_ms = now_ms; /* the next worker needs another idle period */
    }
    return d;
}

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
