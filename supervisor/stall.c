/* stall.c - notices when the arbiter's own event loop ran late.
 *
 * A worker is judged by its heartbeats, but the arbiter that reads them can itself stop running: a
 * SIGSTOP, a paused VM, a cgroup's CPU quota, a blocked write. When it resumes, every liveness deadline
 * is due at once while the heartbeats that arrived meanwhile still sit unread in the channels, and
 * acting on those deadlines would kill every healthy worker. So the loop measures itself: a prepare
 * handle notes the time and how long the loop means to block (uv_backend_timeout), the check handle
 * right after the poll compares that with the monotonic clock, and the prepare handle also measures
 * how long the callbacks of one turn took. Lateness above a fraction of --timeout is a stall: the
 * owner is told (it re-arms the liveness deadlines and logs it once) before the timers of that turn
 * run, since libuv runs the check handles before the timers. Two handles, no timer: the measure costs
 * no wakeup of its own. */
#include "stall.h"

uint64_t stall_lateness_ms(uint64_t started_ns, uint64_t now_ns, int64_t allowed_ms) {
    if (allowed_ms < 0 || now_ns <= started_ns)
        return 0;
    uint64_t elapsed_ms = (now_ns - started_ns) / 1000000u;
    return elapsed_ms > (uint64_t)allowed_ms ? elapsed_ms - (uint64_t)allowed_ms : 0;
}

uint64_t stall_threshold_ms(double timeout_s) {
    if (!(timeout_s > 0))
        return 1000u;
    uint64_t fraction = (uint64_t)(timeout_s * 1000.0 / STALL_TIMEOUT_DIVISOR);
    return fraction < STALL_MIN_MS ? STALL_MIN_MS : fraction;
}

static void stall_report(struct stall *stall, uint64_t late_ms) {
    if (late_ms < stall->threshold_ms)
        return;
    stall->stalls_total++;
    if (stall->stalled)
        stall->stalled(stall, late_ms);
}

static void stall_on_before_poll(uv_prepare_t *handle) {
    struct stall *stall = handle->data;
    uint64_t now = uv_hrtime();
    if (stall->poll_ended_ns) /* the callbacks since the last poll: they should take no time at all */
        stall_report(stall, stall_lateness_ms(stall->poll_ended_ns, now, 0));
    stall->poll_started_ns = now;
    /* libuv's public uv_backend_timeout() answers 0 whenever a watcher changed since the last poll
     * (it cannot know the backend's state before uv_run updates it), while uv_run itself then blocks
     * until the next timer: a pipe whose reading resumed made a 990 ms poll look like a 990 ms stall,
     * and every blocked worker's kill waited another --timeout. A real 0 ends the poll at once, so it
     * has nothing to judge either: 0 is "unknown", not a deadline. A pause in such a poll is still
     * caught: each deadline reads its worker's channel before it condemns it (worker.c). */
    int timeout_ms = uv_backend_timeout(handle->loop);
    stall->poll_timeout_ms = timeout_ms == 0 ? -1 : timeout_ms;
}

static void stall_on_after_poll(uv_check_t *handle) {
    struct stall *stall = handle->data;
    uint64_t now = uv_hrtime();
    if (stall->poll_started_ns)
        stall_report(stall, stall_lateness_ms(stall->poll_started_ns, now, stall->poll_timeout_ms));
    stall->poll_ended_ns = uv_hrtime(); /* after the owner's work: its own time is not a stall */
}

void stall_start(struct stall *stall, uv_loop_t *loop, double timeout_s, stall_fn stalled, void *data) {
    stall->threshold_ms = stall_threshold_ms(timeout_s);
    stall->stalled = stalled;
    stall->data = data;
    stall->poll_started_ns = stall->poll_ended_ns = 0;
    uv_prepare_init(loop, &stall->before_poll);
    uv_check_init(loop, &stall->after_poll);
    stall->before_poll.data = stall->after_poll.data = stall;
    uv_prepare_start(&stall->before_poll, stall_on_before_poll);
    uv_check_start(&stall->after_poll, stall_on_after_poll);
    /* Measuring keeps nothing alive: the loop ends when the arbiter's real handles are closed. */
    uv_unref((uv_handle_t *)&stall->before_poll);
    uv_unref((uv_handle_t *)&stall->after_poll);
    stall->started = true;
}

void stall_close(struct stall *stall) {
    if (!stall->started)
        return;
    stall->started = false;
    uv_close((uv_handle_t *)&stall->before_poll, NULL); /* embedded in struct arbiter */
    uv_close((uv_handle_t *)&stall->after_poll, NULL);
}
