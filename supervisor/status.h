/* status.h - the read model: one census of the running arbiter, shared by every reader.
 *
 * `ctl status` (status_json.c), /metrics (metrics_page.c), the health rule of /healthz and
 * `ctl health` (status_health) and the autoscaler's sampler (autoscale.c) all read the daemon
 * through here, so they cannot disagree about what a worker's state is, which workers count as
 * ready or live, or what the arbiter's own state is called. Nothing here changes anything: the
 * sources are the owners' own structs, read where they are. */
#ifndef ARBITER_STATUS_H
#define ARBITER_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "board.h"
#include "config.h"
#include "listener.h"
#include "pool.h"
#include "procstat.h"
#include "reaper.h"
#include "upgrade.h"
#include "fork_server.h"

/* The arbiter's own life. A reload is not a state of its own: the pool's reload knows, and
 * status_state_name says "reloading". */
enum arbiter_state { ARBITER_STARTING, ARBITER_RUNNING, ARBITER_STOPPING };

/* Where the census reads: the owners' structs, set once by the composition root (daemon.c). */
struct status_sources {
    uv_loop_t *loop;
    const struct config *config;
    const enum arbiter_state *state;
    const uint64_t *started_ms;
    struct pool *pool;
    const struct fork_server *fork_server; /* NULL without --preload */
    const struct board *board;
    const struct listener_set *listeners;
    const struct upgrade *upgrade;
    const struct reaper *reaper;
    const uint64_t *control_commands; /* requests the control socket received */
};

/* Where a live worker (or a slot without one) is counted: arbiter_workers{state=...}. */
enum status_bucket { STATUS_BOOTING, STATUS_READY, STATUS_DRAINING, STATUS_BACKOFF, STATUS_CRASHLOOP, STATUS_BUCKET_COUNT };
const char *status_bucket_name(enum status_bucket bucket);

/* One live worker, or a slot without one, as every reader sees it. */
struct status_worker {
    const struct worker *worker;      /* NULL: a slot in backoff or crashloop (with_empty_slots) */
    const struct slot *slot;          /* the slot of its active worker; NULL for successors and draining workers */
    unsigned id;                      /* the slot's id */
    enum status_bucket bucket;
    const char *state;                /* spawning|booting|ready|draining|exited|backoff|crashloop */
    double uptime_s;                  /* 0 without a worker */
    const struct proc_stats *stats;   /* all zeros until /proc was first read */
    bool stats_known;                 /* /proc has been read at least once */
    const struct board_entry *entry;  /* its entry on the board; NULL: none */
};

typedef void status_visit_fn(const struct status_worker *worker, void *data);

/* The one walk over the live workers (pool_walk's order), each seen as a status_worker. */
void status_walk(const struct status_sources *sources, bool with_empty_slots, status_visit_fn *visit, void *data);

/* The totals every reader needs. */
struct status_census {
    const char *state;               /* starting|running|reloading|stopping */
    unsigned target, ready, live;
    unsigned buckets[STATUS_BUCKET_COUNT];
    uint64_t requests;               /* served by every worker, those that exited included */
    uint64_t in_flight;
    double uptime_s;
    const struct zygote *zygote;     /* NULL without --preload, and between a death and its restart */
};

void status_take_census(const struct status_sources *sources, struct status_census *out);

/* "starting", "running", "reloading" or "stopping": what status, logs and the health reason show. */
const char *status_state_name(const struct status_sources *sources);

/* The readiness rule of /healthz and `ctl health`: 200, or 503 while stopping or with fewer than
 * --min-ready workers ready; reason says which. */
int status_health(const struct status_sources *sources, char *reason, size_t reason_size);

#endif
