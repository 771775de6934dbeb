/* autoscale.h - --autoscale MIN:MAX: the worker count follows the load.
 *
 * Every AUTOSCALE_TICK_MS the arbiter samples three signals: connections waiting in the listeners'
 * accept queues (TCP_INFO), the busy fraction (ready workers with a request in flight, from the
 * board) and event-loop lag (how late the workers' 10 Hz ticks fire, from the board). The decision
 * is a pure function of the policy, the smoothed signals and the clock (autoscale_decide in
 * autoscale_policy.h), unit-tested without processes; autoscale.c only samples, applies and reports. */
#ifndef ARBITER_AUTOSCALE_H
#define ARBITER_AUTOSCALE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "autoscale_policy.h"

#define AUTOSCALE_TICK_MS 250u

struct status_sources;

/* The running autoscaler: the policy in force, the trend, the last decision and the counts. */
struct autoscale {
    const struct status_sources *sources; /* what it samples (status.h); it scales sources->pool */
    struct autoscale_policy policy;
    struct autoscale_trend trend;
    struct autoscale_decision last;   /* last UP, DOWN or BLOCKED; last.at_ms == 0: none yet */
    uint64_t decisions[AUTOSCALE_ACTION_COUNT][AUTOSCALE_REASON_COUNT];
    struct autoscale_signals sample;  /* the latest sample, for status and metrics */
    uv_timer_t timer;
    bool timer_open;
};

/* Starts sampling when the policy is enabled (the timer exists either way, for `ctl autoscale`). */
void autoscale_start(struct autoscale *autoscale, const struct status_sources *sources,
                     const struct autoscale_policy *policy);

/* `ctl autoscale MIN:MAX`: enables with these bounds; a count outside them moves at once. */
void autoscale_enable(struct autoscale *autoscale, unsigned min, unsigned max, const char *why);

/* `ctl autoscale off`, or a manual scale: the count stays where it is. Logged when it was on. */
void autoscale_disable(struct autoscale *autoscale, const char *why);

/* The arbiter is stopping: no more samples. */
void autoscale_stop(struct autoscale *autoscale);

void autoscale_close(struct autoscale *autoscale);

#endif
