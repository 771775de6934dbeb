/* reload.c - rolling reloads: what is left, when it is done, when it has failed.
 *
 * A reload gives the pool a new generation; every slot whose worker is older is marked for an
 * overlapped replacement, which pool.c carries out up to --max-surge at a time. Progress is not
 * tracked by counting events: after every change in the pool (a worker ready, an exit, a restart,
 * a scale) pool.c looks at the slots again (pool_reload_check), so a slot that restarted with the
 * new code counts as done, a worker already on the new generation is never replaced twice, and a
 * slot that is booting or crash-looping simply keeps the reload open — until the deadline, which
 * bounds every reload: then it fails with the reason, and whoever serves keeps serving. This file keeps the
 * reload's own state and its log lines; it reads no slot and calls nothing of the pool. */
#include "reload.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

const char *reload_state_name(enum reload_state state) {
    static const char *const names[] = {"idle", "running", "done", "failed"};
    return state <= RELOAD_FAILED ? names[state] : "invalid";
}

bool reload_running(const struct reload *reload) { return reload->state == RELOAD_RUNNING; }

bool reload_joins(const struct reload *reload, uint64_t now_ms) {
    return reload_running(reload) && now_ms >= reload->last_request_ms && now_ms - reload->last_request_ms < RELOAD_JOIN_MS;
}

void reload_join(struct reload *reload, uint64_t now_ms, const char *why) {
    reload->joined++;
    reload->last_request_ms = now_ms;
    log_debug("reload_joined", "reload (%s) joins the reload to generation %u: less than %.1f s after the previous "
              "request", why, reload->generation, RELOAD_JOIN_MS / 1000.0);
}

uint64_t reload_bound_ms(unsigned slots, unsigned surge, double boot_timeout) {
    double round_ms = boot_timeout > 0 ? boot_timeout * 1000.0 : 600000.0;
    unsigned rounds = surge ? (slots + surge - 1) / surge : slots;
    if (rounds == 0)
        rounds = 1;
    return (uint64_t)((double)(rounds + 1) * round_ms) + 5000u;
}

static void reload_on_deadline(uv_timer_t *timer) {
    struct reload *r = timer->data;
    if (r->state == RELOAD_RUNNING)
        r->expired(r->data);
}

void reload_init(struct reload *reload, uv_loop_t *loop, void (*expired)(void *data), void *data) {
    uv_timer_init(loop, &reload->deadline);
    reload->deadline.data = reload;
    reload->expired = expired;
    reload->data = data;
}

void reload_close(struct reload *reload) {
    if (reload->deadline.loop && !uv_is_closing((uv_handle_t *)&reload->deadline))
        uv_close((uv_handle_t *)&reload->deadline, NULL); /* embedded in struct pool */
}

void reload_begin(struct reload *r, unsigned generation, uint64_t now_ms, uint64_t bound_ms, unsigned surge) {
    r->state = RELOAD_RUNNING;
    r->id++;
    r->generation = generation;
    r->queued = false;
    r->started_ms = r->last_request_ms = now_ms;
    r->finished_ms = 0;
    r->failure[0] = '\0';
    r->joined = 0;
    r->started_total++;
    uv_timer_start(&r->deadline, reload_on_deadline, bound_ms, 0);
    log_info("reload_started", "rolling reload to generation %u: up to %u worker%s at a time, each replaced once its "
             "successor is ready (bound %.0f s)", r->generation, surge, surge == 1 ? "" : "s", (double)bound_ms / 1000);
}

void reload_finish(struct reload *r, uint64_t now_ms, unsigned ready, unsigned target) {
    r->state = RELOAD_DONE;
    r->finished_ms = now_ms;
    uv_timer_stop(&r->deadline);
    char joined[64] = "";
    if (r->joined)
        snprintf(joined, sizeof joined, " (%u more request%s joined it)", r->joined, r->joined == 1 ? "" : "s");
    log_info("reload_done", "reload to generation %u finished in %llu ms; %u/%u workers ready%s", r->generation,
             (unsigned long long)(r->finished_ms - r->started_ms), ready, target, joined);
}

bool reload_fail(struct reload *r, uint64_t now_ms, const char *reason) {
    if (r->state != RELOAD_RUNNING)
        return false;
    r->state = RELOAD_FAILED;
    r->failed_total++;
    r->finished_ms = now_ms;
    snprintf(r->failure, sizeof r->failure, "%s", reason);
    uv_timer_stop(&r->deadline);
    return true;
}

void reload_log_failure(const struct reload *r, const char *reason, unsigned ready, unsigned target) {
    log_error("reload_failed", "reload to generation %u failed after %llu ms: %s; %u/%u workers keep serving",
              r->generation, (unsigned long long)(r->finished_ms - r->started_ms), reason, ready, target);
}
