/* signals.c - what each signal means to the arbiter, as in gunicorn.
 *
 * TERM graceful stop · INT, QUIT quick stop · HUP rolling reload · TTIN/TTOU one worker more/less ·
 * USR1 reopen log files · USR2 binary upgrade. libuv turns each signal into a callback on the loop,
 * so the handlers run in the same place as everything else, never in signal context. */
#include <signal.h>
#include <string.h>

#include "signals.h"

#include "arbiter.h"
#include "child_output.h"
#include "log.h"

struct signal_action {
    int signum;
    const char *name;
    void (*handle)(struct arbiter *arbiter);
};

static void on_term(struct arbiter *a) { arbiter_stop(a, true, "SIGTERM"); }
static void on_quick(struct arbiter *a) { arbiter_stop(a, false, "SIGINT/SIGQUIT"); }
static void on_hup(struct arbiter *a) { arbiter_reload(a, "SIGHUP"); }
static void on_ttin(struct arbiter *a) {
    if (a->pool.target < a->config->max_workers)
        arbiter_scale(a, a->pool.target + 1, "SIGTTIN");
    else
        log_warning("scale_refused", "SIGTTIN ignored: already at --max-workers %u", a->config->max_workers);
}
static void on_ttou(struct arbiter *a) {
    if (a->pool.target > 1)
        arbiter_scale(a, a->pool.target - 1, "SIGTTOU");
    else
        log_warning("scale_refused", "SIGTTOU ignored: one worker is the minimum; use `arbiter ctl stop` to stop");
}
/* After logrotate moved the file: the arbiter reopens it (as root, if it started as root). Workers
 * write through the arbiter (child_output.c), so that is all, except for a worker adopted from an
 * older image that writes to the file itself: it gets the new file over its channel, because a worker
 * running as --user may not be allowed to open it (logrotate's `create 0640 root adm`). */
static void send_log_file(struct worker *w, const struct slot *slot, void *data) {
    (void)slot;
    unsigned *failures = data;
    uv_os_fd_t fd;
    char err[256];
    if (w->state == WORKER_EXITED || child_output_fd(&w->child.output) >= 0 || uv_fileno((uv_handle_t *)&w->child.channel, &fd) != 0)
        return; /* its output comes through the arbiter, which just reopened the file */
    if (log_send_file(fd, err, sizeof err) != 0) {
        log_event(LOG_WARNING, "reopen_logs_failed", w->slot_id, w->pid, "%s; it keeps writing to the old file", err);
        (*failures)++;
    }
}

static void on_usr1(struct arbiter *a) {
    if (!a->config->log_file) {
        log_info("reopen_logs", "SIGUSR1: logs go to %s (no --log-file FILE); nothing to reopen",
                 a->config->log_to_stdout ? "stdout" : "stderr");
        return;
    }
    char err[CONFIG_ERROR_MAX];
    if (log_open_file(a->config->log_file, err, sizeof err) != 0) {
        log_error("reopen_logs_failed", "%s; still writing to the old file", err);
        return;
    }
    unsigned failures = 0;
    pool_walk(&a->pool, false, send_log_file, &failures);
    if (a->config->preload)
        fork_server_send_log_file(&a->fork_server);
    log_info("reopen_logs", "reopened %s%s", a->config->log_file, failures ? " (some workers keep the old file, see above)" : "");
}
static void on_usr2(struct arbiter *a) {
    char err[512];
    if (upgrade_request(&a->upgrade, "SIGUSR2", err, sizeof err) != 0)
        log_warning("upgrade_refused", "SIGUSR2: %s", err);
}

static const struct signal_action signal_table[] = {
    {SIGTERM, "TERM", on_term}, {SIGINT, "INT", on_quick},  {SIGQUIT, "QUIT", on_quick}, {SIGHUP, "HUP", on_hup},
    {SIGTTIN, "TTIN", on_ttin}, {SIGTTOU, "TTOU", on_ttou}, {SIGUSR1, "USR1", on_usr1},  {SIGUSR2, "USR2", on_usr2},
};

_Static_assert(sizeof signal_table / sizeof signal_table[0] == SIGNALS_COUNT, "one uv_signal_t per signal");

static void on_signal(uv_signal_t *handle, int signum) {
    struct signals *signals = handle->data;
    for (size_t i = 0; i < SIGNALS_COUNT; i++) {
        if (signal_table[i].signum == signum) {
            log_debug("signal", "received SIG%s", signal_table[i].name);
            signal_table[i].handle(signals->arbiter);
            return;
        }
    }
}

int signals_start(struct signals *signals, struct arbiter *arbiter) {
    signal(SIGPIPE, SIG_IGN); /* a control client that hangs up must not kill the arbiter */
    signals->arbiter = arbiter;
    for (size_t i = 0; i < SIGNALS_COUNT; i++) {
        uv_signal_t *handle = &signals->handles[i];
        uv_signal_init(arbiter->loop, handle);
        handle->data = signals;
        signals->count++;
        int rc = uv_signal_start(handle, on_signal, signal_table[i].signum);
        if (rc != 0) {
            log_error("signal_failed", "cannot handle SIG%s: %s", signal_table[i].name, uv_strerror(rc));
            return -1;
        }
        /* Background jobs (arbiter run &) get TTIN/TTOU from the terminal too; that is fine: the
         * handlers scale, as asked by whoever sent them. */
    }
    return 0;
}

void signals_close(struct signals *signals) {
    for (size_t i = 0; i < signals->count; i++)
        uv_close((uv_handle_t *)&signals->handles[i], NULL); /* embedded in struct signals */
    signals->count = 0;
}
