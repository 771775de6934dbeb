/* backoff.h - when a slot whose worker crashed may start the next one. */
#ifndef ARBITER_BACKOFF_H
#define ARBITER_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

#define BACKOFF_BASE_MS 100u
#define BACKOFF_MAX_MS 30000u
#define BACKOFF_HEALTHY_MS 10000u  /* a worker ready this long wipes the slot's failure record */
#define BACKOFF_CRASHLOOP_FAILURES 5u

struct backoff {
    unsigned failures; /* consecutive unexpected exits */
};

/* Records an unexpected exit of a worker that had been ready for ready_ms (0: never ready) and
 * returns how long to wait before starting the next: 0 for the first failure, then 100 ms doubling
 * up to 30 s. */
uint64_t backoff_record_failure(struct backoff *backoff, uint64_t ready_ms);

/* Failing fast this many times in a row is a crash loop: reported, still retried at the slow pace. */
bool backoff_is_crashloop(const struct backoff *backoff);

#endif
