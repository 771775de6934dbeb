/* autoscale_policy.c - the decision of --autoscale MIN:MAX, a pure function (see autoscale_policy.h).
 *
 * Policy (every number a flag; see autoscale_policy.h):
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
 * within about a second. Decisions wait while the pool is changing (workers booting, a reload). A
 * decision says whether it is worth reporting (every change, the first of a run of blocked ones);
 * autoscale.c logs and counts those.
 *
 * autoscale_decide is its steps in order: smooth the sample into the trend, wait while the pool is
 * changing, then the first of: back inside MIN:MAX, up under pressure, down over the memory ceiling,
 * down after a long enough low load. */
#include "autoscale_policy.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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

/* Folds the sample taken at now_ms into the moving averages (a repeated timestamp changes nothing). */
static void trend_update(const struct autoscale_policy *p, struct autoscale_trend *t, const struct autoscale_signals *s,
                         uint64_t now_ms) {
    double tau_ms = p->up_after_s * 500.0;
    double alpha = t->primed && now_ms > t->last_ms && tau_ms > 0 ? 1 - exp(-(double)(now_ms - t->last_ms) / tau_ms) : 1.0;
    if (t->primed && now_ms <= t->last_ms)
        return;
    t->queue = smooth(t->queue, s->queue, alpha);
    t->busy = smooth(t->busy, s->busy, alpha);
    t->lag_s = smooth(t->lag_s, s->lag_s, alpha);
    t->queue_capped = smooth(t->queue_capped, cap(s->queue, p->queue), alpha);
    t->lag_capped = smooth(t->lag_capped, cap(s->lag_s, p->lag_s), alpha);
    t->last_ms = now_ms;
    t->primed = true;
}

/* A decision to move to `to` for `reason`, reported; the low-load clock starts over. */
static struct autoscale_decision move_to(struct autoscale_decision d, struct autoscale_trend *t, unsigned to,
                                         enum autoscale_reason reason) {
    d.action = to > d.from ? AUTOSCALE_UP : AUTOSCALE_DOWN;
    d.reason = reason;
    d.to = to;
    d.report = true;
    t->low_since_ms = 0;
    return d;
}

/* Under pressure: grow by half (at least one), within MAX and the memory ceiling, once cooled. */
static struct autoscale_decision decide_up(const struct autoscale_policy *p, struct autoscale_trend *t,
                                           const struct autoscale_signals *s, struct autoscale_decision d,
                                           enum autoscale_reason why, bool cooled, bool was_blocked) {
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
    return move_to(d, t, to, d.reason);
}

/* No pressure: one worker fewer after --autoscale-idle of low load; the next needs another. */
static struct autoscale_decision decide_idle(const struct autoscale_policy *p, struct autoscale_trend *t,
                                             const struct autoscale_signals *s, struct autoscale_decision d,
                                             uint64_t now_ms) {
    if (!load_is_low(p, t, s->target)) {
        t->low_since_ms = 0;
        return d;
    }
    if (!t->low_since_ms)
        t->low_since_ms = now_ms;
    if (s->target > p->min && now_ms - t->low_since_ms >= (uint64_t)(p->idle_s * 1000)) {
        d = move_to(d, t, s->target - 1, AUTOSCALE_REASON_IDLE);
        t->low_since_ms = now_ms; /* the next worker needs another idle period */
    }
    return d;
}

struct autoscale_decision autoscale_decide(const struct autoscale_policy *p, struct autoscale_trend *t,
                                           const struct autoscale_signals *s, uint64_t now_ms) {
    struct autoscale_decision d = {.action = AUTOSCALE_HOLD, .from = s->target, .to = s->target, .signals = *s, .at_ms = now_ms};
    trend_update(p, t, s, now_ms);
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
    if (s->target < p->min || s->target > p->max)
        return move_to(d, t, s->target < p->min ? p->min : p->max, AUTOSCALE_REASON_BOUNDS);
    bool cooled = now_ms - t->settled_since_ms >= (uint64_t)(p->up_after_s * 1000);
    enum autoscale_reason why = AUTOSCALE_REASON_NONE;
    if (under_pressure(p, t, &why))
        return decide_up(p, t, s, d, why, cooled, was_blocked);
    if (p->max_memory && s->memory > p->max_memory && s->target > p->min && cooled)
        return move_to(d, t, s->target - 1, AUTOSCALE_REASON_MEMORY);
    return decide_idle(p, t, s, d, now_ms);
}
