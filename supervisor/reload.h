/* reload.h - the one answer to "is a reload running, is it done, did it fail?"
 *
 * Pure state over the reload itself: pool.c decides (which slots are left, what failed) and tells
 * it; reload.c calls nothing of the pool. */
#ifndef ARBITER_RELOAD_H
#define ARBITER_RELOAD_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

enum reload_state { RELOAD_IDLE, RELOAD_RUNNING, RELOAD_DONE, RELOAD_FAILED };

struct reload {
    enum reload_state state;
    uint64_t id;         /* 1, 2, ...: one per reload started; `ctl reload` waits for its own */
    unsigned generation; /* what this reload rolls out */
    bool queued;         /* asked for while the pool was starting: begins once all are ready */
    uint64_t started_ms;
    uint64_t finished_ms;
    uint64_t started_total;
    uint64_t failed_total;
    unsigned joined;     /* requests that joined this reload instead of starting another */
    uint64_t last_request_ms; /* its start, or the last request that joined it */
    char failure[256];   /* RELOAD_FAILED: why, for the log, `ctl reload` and status */
    uv_timer_t deadline; /* the upper bound: a reload never stays "reloading" forever */
    void (*expired)(void *data); /* the bound passed while running: the owner fails it with the reason */
    void *data;
};

void reload_init(struct reload *reload, uv_loop_t *loop, void (*expired)(void *data), void *data);
void reload_close(struct reload *reload);

/* A reload to `generation` begins (a running one is superseded), bounded by bound_ms; surge: the
 * replacements booting at once, for the log. */
void reload_begin(struct reload *reload, unsigned generation, uint64_t now_ms, uint64_t bound_ms, unsigned surge);

/* Every slot serves the new generation: the reload is done (ready and target: for the log). */
void reload_finish(struct reload *reload, uint64_t now_ms, unsigned ready, unsigned target);

/* Ends the running reload as failed, for reason. Returns false when none was running; then the
 * owner cancels its replacements and calls reload_log_failure. */
bool reload_fail(struct reload *reload, uint64_t now_ms, const char *reason);
void reload_log_failure(const struct reload *reload, const char *reason, unsigned ready, unsigned target);

/* A burst of requests (100 SIGHUPs sent by a loop, a deploy tool that signals twice) is one reload: a
 * request within RELOAD_JOIN_MS of the previous one (the start of the reload, or a request that
 * joined it) joins the reload still running (pure). */
#define RELOAD_JOIN_MS 1000u
bool reload_joins(const struct reload *reload, uint64_t now_ms);

/* Counts a request that joined the running reload (logged at debug: the reload has its own line). */
void reload_join(struct reload *reload, uint64_t now_ms, const char *why);

bool reload_running(const struct reload *reload);
const char *reload_state_name(enum reload_state state);

/* The bound for a reload of `slots` workers, `surge` at a time. */
uint64_t reload_bound_ms(unsigned slots, unsigned surge, double boot_timeout);

#endif
