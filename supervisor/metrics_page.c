/* metrics_page.c - the /metrics page (Prometheus text format 0.0.4), rendered from the census
 * (status.h) and the autoscaler's record. Adding a metric is one header() and one
 * text_buffer_printf() in the section it belongs to; a per-worker series is one row of
 * per_worker_metrics and one value in worker_row(). */
#include "metrics_page.h"

#include "log.h"
#include "version.h"

static void header(struct text_buffer *b, const char *name, const char *type, const char *help) {
    text_buffer_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* --preload: the zygote that forks the workers (absent without --preload). */
static void metrics_zygote(struct text_buffer *b, const struct status_sources *sources, const struct zygote *z) {
    const struct fork_server *server = sources->fork_server;
    if (!server)
        return;
    header(b, "arbiter_zygote_ready", "gauge", "1 while a zygote (--preload) is ready to fork workers.");
    text_buffer_printf(b, "arbiter_zygote_ready %d\n", z && z->state == ZYGOTE_READY);
    header(b, "arbiter_zygote_restarts_total", "counter", "Zygotes restarted after they died.");
    text_buffer_printf(b, "arbiter_zygote_restarts_total %llu\n", (unsigned long long)server->zygote_restarts);
    if (!z || z->state != ZYGOTE_READY)
        return;
    header(b, "arbiter_zygote_generation", "gauge", "App generation the zygote imported.");
    text_buffer_printf(b, "arbiter_zygote_generation %u\n", z->generation);
    header(b, "arbiter_zygote_import_seconds", "gauge", "Time the zygote took to import the app.");
    text_buffer_printf(b, "arbiter_zygote_import_seconds %.3f\n", z->import_seconds);
    header(b, "arbiter_zygote_memory_pss_bytes", "gauge", "Proportional set size of the zygote.");
    text_buffer_printf(b, "arbiter_zygote_memory_pss_bytes %llu\n", (unsigned long long)z->stats.pss_bytes);
    header(b, "arbiter_zygote_forks_total", "counter", "Workers this zygote forked.");
    text_buffer_printf(b, "arbiter_zygote_forks_total %llu\n", (unsigned long long)z->forks);
}

/* --autoscale: the bounds, the smoothed signals and every decision by action and reason. */
static void metrics_autoscale(struct text_buffer *b, const struct autoscale *s) {
    const struct {
        const char *name, *help, *fmt;
        double value;
    } gauges[] = {
        {"arbiter_autoscale_enabled", "1 while autoscaling is on.", "%.0f", s->policy.enabled},
        {"arbiter_autoscale_min_workers", "Lower bound of autoscaling.", "%.0f", s->policy.min},
        {"arbiter_autoscale_max_workers", "Upper bound of autoscaling.", "%.0f", s->policy.max},
        {"arbiter_autoscale_queue", "Connections waiting in the accept queues (smoothed).", "%.3f", s->trend.queue},
        {"arbiter_autoscale_busy", "Fraction of ready workers with requests in flight (smoothed).", "%.3f", s->trend.busy},
        {"arbiter_autoscale_lag_seconds", "Event-loop lag of the ready workers (smoothed mean).", "%.4f", s->trend.lag_s},
    };
    for (size_t i = 0; i < sizeof gauges / sizeof gauges[0]; i++) {
        header(b, gauges[i].name, "gauge", gauges[i].help);
        text_buffer_printf(b, "%s ", gauges[i].name);
        text_buffer_printf(b, gauges[i].fmt, gauges[i].value);
        text_buffer_printf(b, "\n");
    }
    header(b, "arbiter_autoscale_decisions_total", "counter", "Autoscaling decisions by action and reason.");
    for (int action = AUTOSCALE_UP; action < AUTOSCALE_ACTION_COUNT; action++)
        for (int reason = 1; reason < AUTOSCALE_REASON_COUNT; reason++)
            if (s->decisions[action][reason])
                text_buffer_printf(b, "arbiter_autoscale_decisions_total{action=\"%s\",reason=\"%s\"} %llu\n",
                                   autoscale_action_name((enum autoscale_action)action),
                                   autoscale_reason_name((enum autoscale_reason)reason),
                                   (unsigned long long)s->decisions[action][reason]);
}

static void per_worker(struct text_buffer *b, const char *name, unsigned id, int pid, const char *value_fmt, double value) {
    text_buffer_printf(b, "%s{worker=\"%u\",pid=\"%d\"} ", name, id, pid);
    text_buffer_printf(b, value_fmt, value);
    text_buffer_printf(b, "\n");
}


static void metrics_image(struct text_buffer *b, const struct status_sources *sources, const struct status_census *census) {
    header(b, "arbiter_build_info", "gauge", "Version of the arbiter binary.");
    text_buffer_printf(b, "arbiter_build_info{version=\"%s\",build=\"%s\"} 1\n", ARBITER_VERSION, sources->upgrade->build);
    header(b, "arbiter_upgrades_total", "counter", "In-place upgrades this process went through (same pid).");
    text_buffer_printf(b, "arbiter_upgrades_total %u\n", sources->upgrade->upgrades);
    header(b, "arbiter_up_seconds", "gauge", "Seconds since the arbiter started.");
    text_buffer_printf(b, "arbiter_up_seconds %.3f\n", census->uptime_s);
    header(b, "arbiter_stopping", "gauge", "1 while the arbiter drains to stop (lame duck).");
    text_buffer_printf(b, "arbiter_stopping %d\n", *sources->state == ARBITER_STOPPING);
    header(b, "arbiter_target_workers", "gauge", "Number of worker slots asked for.");
    text_buffer_printf(b, "arbiter_target_workers %u\n", census->target);
    header(b, "arbiter_workers", "gauge", "Workers by state.");
    for (int i = 0; i < STATUS_BUCKET_COUNT; i++)
        text_buffer_printf(b, "arbiter_workers{state=\"%s\"} %u\n", status_bucket_name((enum status_bucket)i),
                           census->buckets[i]);
}

static void metrics_counts(struct text_buffer *b, const struct status_sources *sources, const struct status_census *census) {
    const struct pool *pool = sources->pool;
    header(b, "arbiter_worker_restarts_total", "counter", "Restarts of crashed or killed workers.");
    text_buffer_printf(b, "arbiter_worker_restarts_total %llu\n", (unsigned long long)pool->restarts_total);
    header(b, "arbiter_worker_exits_total", "counter", "Worker exits by reason.");
    for (int r = 0; r < EXIT_REASON_COUNT; r++)
        text_buffer_printf(b, "arbiter_worker_exits_total{reason=\"%s\"} %llu\n", exit_reason_name((enum exit_reason)r),
                           (unsigned long long)pool->exits[r]);
    header(b, "arbiter_reloads_total", "counter", "Rolling reloads started.");
    text_buffer_printf(b, "arbiter_reloads_total %llu\n", (unsigned long long)pool->reload.started_total);
    header(b, "arbiter_control_commands_total", "counter", "Requests received on the control socket.");
    text_buffer_printf(b, "arbiter_control_commands_total %llu\n",
                       (unsigned long long)(sources->control_commands ? *sources->control_commands : 0));
    header(b, "arbiter_log_lines_dropped_total", "counter",
           "Log lines (the arbiter's and the workers') dropped because the log output was blocked or failing.");
    text_buffer_printf(b, "arbiter_log_lines_dropped_total %llu\n", (unsigned long long)log_lines_dropped());
    header(b, "arbiter_log_write_errors_total", "counter",
           "Failed writes to the log output (ENOSPC, EIO, EPIPE...; a failing output is retried every second).");
    text_buffer_printf(b, "arbiter_log_write_errors_total %llu\n", (unsigned long long)log_write_errors());
    header(b, "arbiter_requests_total", "counter", "Requests served by all workers, as of their last heartbeat.");
    text_buffer_printf(b, "arbiter_requests_total %llu\n", (unsigned long long)census->requests);
    header(b, "arbiter_requests_in_flight", "gauge", "Requests being served, as of the last heartbeats.");
    text_buffer_printf(b, "arbiter_requests_in_flight %llu\n", (unsigned long long)census->in_flight);
}

/* The per-worker series: one row each, in the order of the fields of worker_values(). Memory and
 * CPU come from each worker's cached /proc figures (see WORKER_STATS_MAX_AGE_MS). */
enum { FIELD_REQUESTS, FIELD_IN_FLIGHT, FIELD_PSS, FIELD_RSS, FIELD_CPU, FIELD_UPTIME, FIELD_SHARED, FIELD_PRIVATE,
       FIELD_CONNECTIONS, FIELD_COUNT };

static const struct {
    const char *name, *type, *help, *fmt;
} per_worker_metrics[FIELD_COUNT] = {
    {"arbiter_worker_requests_total", "counter", "Requests served by this worker.", "%.0f"},
    {"arbiter_worker_requests_in_flight", "gauge", "Requests this worker is serving.", "%.0f"},
    {"arbiter_worker_memory_pss_bytes", "gauge", "Proportional set size of the worker (refreshed every 10 s).", "%.0f"},
    {"arbiter_worker_memory_rss_bytes", "gauge", "Resident set size of the worker (refreshed every 10 s).", "%.0f"},
    {"arbiter_worker_cpu_seconds_total", "counter", "CPU time (user + system) of the worker (refreshed every 10 s).", "%.2f"},
    {"arbiter_worker_uptime_seconds", "gauge", "Seconds since the worker started.", "%.3f"},
    {"arbiter_worker_memory_shared_bytes", "gauge", "Resident memory the worker shares with other processes (with --preload: the zygote's pages it has not written to).", "%.0f"},
    {"arbiter_worker_memory_private_bytes", "gauge", "Resident memory only this worker maps.", "%.0f"},
    {"arbiter_worker_connections", "gauge", "Open connections of the worker (from the board).", "%.0f"},
};

struct series {
    struct text_buffer *b;
    int field;
};

static void worker_row(const struct status_worker *view, void *data) {
    const struct series *series = data;
    const struct worker *w = view->worker;
    const struct proc_stats *s = view->stats;
    int field = series->field;
    if (field == FIELD_CONNECTIONS && !view->entry)
        return;
    if (!view->stats_known && field != FIELD_REQUESTS && field != FIELD_IN_FLIGHT && field != FIELD_UPTIME &&
        field != FIELD_CONNECTIONS)
        return; /* /proc not read yet */
    double values[FIELD_COUNT] = {(double)w->requests, (double)w->in_flight, (double)s->pss_bytes, (double)s->rss_bytes,
                                  s->cpu_seconds, view->uptime_s, (double)s->shared_bytes, (double)s->private_bytes,
                                  view->entry ? (double)view->entry->connections : 0.0};
    per_worker(series->b, per_worker_metrics[field].name, w->slot_id, w->pid, per_worker_metrics[field].fmt,
               values[field]);
}

static void metrics_per_worker(struct text_buffer *b, const struct status_sources *sources) {
    for (int field = 0; field < FIELD_COUNT; field++) {
        header(b, per_worker_metrics[field].name, per_worker_metrics[field].type, per_worker_metrics[field].help);
        struct series series = {b, field};
        status_walk(sources, false, worker_row, &series);
    }
}

static void metrics_listen_queues(struct text_buffer *b, const struct listener_set *listeners) {
    header(b, "arbiter_listen_queue_length", "gauge", "Connections waiting in the listener's accept queue (TCP_INFO).");
    struct text_buffer maxima = {.limit = 1 << 20};
    for (size_t i = 0; i < listeners->count; i++) {
        unsigned waiting, size;
        if (listener_queue(listeners->items[i].fd, &waiting, &size) != 0)
            continue; /* closed at the end of a lame duck, or not TCP */
        text_buffer_printf(b, "arbiter_listen_queue_length{listener=\"");
        text_buffer_escape_label(b, listeners->items[i].name);
        text_buffer_printf(b, "\"} %u\n", waiting);
        text_buffer_printf(&maxima, "arbiter_listen_queue_max{listener=\"");
        text_buffer_escape_label(&maxima, listeners->items[i].name);
        text_buffer_printf(&maxima, "\"} %u\n", size);
    }
    header(b, "arbiter_listen_queue_max", "gauge", "Size of the listener's accept queue (backlog).");
    if (maxima.data)
        text_buffer_printf(b, "%.*s", (int)maxima.length, maxima.data);
    text_buffer_free(&maxima);
}

void metrics_render(const struct status_sources *sources, const struct autoscale *autoscale, struct text_buffer *b) {
    struct status_census census;
    status_take_census(sources, &census);
    metrics_image(b, sources, &census);
    metrics_counts(b, sources, &census);
    metrics_per_worker(b, sources);
    metrics_zygote(b, sources, census.zygote);
    metrics_autoscale(b, autoscale);
    metrics_listen_queues(b, sources->listeners);
}
