/* backoff.c - exponential restart delay per slot.
 *
 * The first crash restarts at once: a single crash (a segfault in a C extension, an OOM kill) should
 * cost as little capacity as possible. Repeated crashes double the wait up to 30 s, so an app that
 * dies on every request cannot make the arbiter spin forking interpreters. A worker that stayed
 * ready for BACKOFF_HEALTHY_MS proves the slot healthy again and resets the count. */
#include "backoff.h"

uint64_t backoff_record_failure(struct backoff *backoff, uint64_t ready_ms) {
    if (ready_ms >= BACKOFF_HEALTHY_MS)
        backoff->failures = 0;
    if (backoff->failures < 1000)
        backoff->failures++;
    if (backoff->failures == 1)
        return 0;
    uint64_t delay = BACKOFF_BASE_MS;
    for (unsigned i = 2; i < backoff->failures && delay < BACKOFF_MAX_MS; i++)
        delay *= 2;
    return delay < BACKOFF_MAX_MS ? delay : BACKOFF_MAX_MS;
}

bool backoff_is_crashloop(const struct backoff *backoff) {
    return backoff->failures >= BACKOFF_CRASHLOOP_FAILURES;
}
