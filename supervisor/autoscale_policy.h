/* autoscale_policy.h - the pure part of --autoscale MIN:MAX: the policy, the signals, the trend and
 * the decision.
 *
 * The decision is a function of the policy, the smoothed signals and the clock (autoscale_decide),
 * with no loop, pool or process behind it, so it is unit-tested on its own and the configuration
 * (config.h) and `arbiter ctl` hold a policy without depending on the running autoscaler
 * (autoscale.h), which samples status.c, applies decisions and reports them. */
#ifndef ARBITER_AUTOSCALE_POLICY_H
#define ARBITER_AUTOSCALE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The flags (config.c), changed at runtime by `ctl autoscale`. */
struct autoscale_policy {
    bool enabled;
    unsigned min, max;      /* --autoscale MIN:MAX */
    double up_after_s;      /* --autoscale-up-after: how long pressure must last (1 s) */
    double idle_s;          /* --autoscale-idle: how long load must stay low per worker removed (60 s) */
    uint64_t max_memory;    /* --autoscale-max-memory: ceiling on the workers' total PSS (0: none) */
    double queue;           /* --autoscale-queue: waiting connections that mean "too few workers" (1) */
    double busy;            /* --autoscale-busy: busy fraction that means "too few workers" (0.9) */
    double lag_s;           /* --autoscale-lag: event-loop lag that means "too few workers" (50 ms) */
};

/* One sample, taken by autoscale.c's sampler. */
struct autoscale_signals {
    unsigned target;        /* workers asked for */
    unsigned ready;         /* of them, ready */
    bool settled;           /* no worker booting or draining, no reload: the count is what it says */
    double queue;           /* connections waiting in the accept queues */
    double busy;            /* 0..1: ready workers with at least one request in flight */
    double lag_s;           /* mean event-loop lag of the ready workers */
    uint64_t memory;        /* total PSS of the live workers (and the zygote) */
    uint64_t worker_memory; /* PSS of the largest ready worker: what one more would cost */
};

enum autoscale_action { AUTOSCALE_HOLD, AUTOSCALE_UP, AUTOSCALE_DOWN, AUTOSCALE_BLOCKED, AUTOSCALE_ACTION_COUNT };

enum autoscale_reason {
    AUTOSCALE_REASON_NONE,
    AUTOSCALE_REASON_QUEUE,  /* up: connections wait in the accept queue */
    AUTOSCALE_REASON_BUSY,   /* up: (nearly) every worker has requests in flight */
    AUTOSCALE_REASON_LAG,    /* up: the event loops run late */
    AUTOSCALE_REASON_IDLE,   /* down: low load for --autoscale-idle */
    AUTOSCALE_REASON_BOUNDS, /* up or down: the count is outside MIN:MAX (they changed) */
    AUTOSCALE_REASON_MAX,    /* blocked: at MAX */
    AUTOSCALE_REASON_MEMORY, /* blocked (or fewer added): --autoscale-max-memory */
    AUTOSCALE_REASON_COUNT
};

/* What the decision remembers between samples: smoothed signals and since when load is low. */
struct autoscale_trend {
    bool primed;            /* the averages hold at least one sample */
    double queue, busy, lag_s; /* exponential moving averages, time constant up_after_s / 2 */
    double queue_capped, lag_capped; /* the same of samples capped at twice their threshold: what
                                        decides, so one extreme sample cannot add workers alone */
    uint64_t last_ms;       /* time of the previous sample */
    uint64_t low_since_ms;  /* 0: load is not low; else since when it has been */
    uint64_t settled_since_ms; /* 0: a change is still under way; else since when the count is settled */
    bool blocked;           /* the last decision was blocked (logged once, not every tick) */
};

struct autoscale_decision {
    enum autoscale_action action;
    bool report;                      /* worth a log line and a count: UP, DOWN, the first BLOCKED */
    enum autoscale_reason reason;
    unsigned from, to;
    struct autoscale_signals signals; /* the sample it was made on */
    double queue, busy, lag_s;        /* the smoothed values it was made on */
    uint64_t at_ms;
};

/* The pure decision: updates trend with the sample taken at now_ms and says what to do. */
struct autoscale_decision autoscale_decide(const struct autoscale_policy *policy, struct autoscale_trend *trend,
                                           const struct autoscale_signals *sample, uint64_t now_ms);

const char *autoscale_action_name(enum autoscale_action action);
const char *autoscale_reason_name(enum autoscale_reason reason);

/* Parses "MIN:MAX" (1 <= MIN <= MAX <= limit); -1 with err naming what is wrong. */
int autoscale_parse_range(const char *text, unsigned limit, unsigned *min, unsigned *max, char *err, size_t err_size);

#endif
