/* stall.h - notices when the arbiter's own event loop ran late (SIGSTOP, a VM pause, CPU throttling). */
#ifndef ARBITER_STALL_H
#define ARBITER_STALL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* The loop is "stalled" when it came back later than it should by at least this part of --timeout:
 * the heartbeat interval (a quarter), and never less than STALL_MIN_MS (scheduling noise). */
#define STALL_TIMEOUT_DIVISOR 4
#define STALL_MIN_MS 200u

struct stall;
typedef void (*stall_fn)(struct stall *stall, uint64_t stalled_ms);

struct stall {
    uv_prepare_t before_poll;
    uv_check_t after_poll;
    uint64_t threshold_ms;
    uint64_t poll_started_ns; /* uv_hrtime() just before the loop blocked */
    int64_t poll_timeout_ms;  /* how long it meant to block (-1: until an event) */
    uint64_t poll_ended_ns;   /* uv_hrtime() when it last came back; 0: not yet */
    uint64_t stalls_total;
    stall_fn stalled; /* called in the loop, before any timer that the stall made due runs */
    void *data;
    bool started;
};

/* Pure: how late (ms) the loop is, started_ns..now_ns having been meant to last allowed_ms
 * (negative allowed_ms: no bound, never late). */
uint64_t stall_lateness_ms(uint64_t started_ns, uint64_t now_ns, int64_t allowed_ms);

/* Pure: the threshold for a --timeout of timeout_s seconds (0: no liveness timeout). */
uint64_t stall_threshold_ms(double timeout_s);

void stall_start(struct stall *stall, uv_loop_t *loop, double timeout_s, stall_fn stalled, void *data);
void stall_close(struct stall *stall);

#endif
