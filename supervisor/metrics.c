/* metrics.c - a tiny HTTP/1.0 server for Prometheus and load balancers.
 *
 * It serves two GET paths and nothing else. Each connection gets a fixed request buffer
 * (METRICS_REQUEST_MAX) and a deadline (METRICS_CLIENT_TIMEOUT_MS); the response is rendered in one
 * go from the arbiter's own state (no I/O but /proc reads of the workers), written, and the
 * connection is closed. So a garbage, huge, slow or idle client costs a bounded amount of memory and
 * time and never blocks the loop.
 *
 * /healthz is the lame-duck switch: it turns 503 the moment the arbiter starts to stop, while the
 * workers are still draining and the listeners still accept, so a load balancer's health check
 * takes the node out of rotation before any connection could be refused. /livez is its opposite:
 * 200 whenever the loop answers, draining or not, for liveness probes that must not kill a pod
 * while it drains.
 *
 * Adding a metric is one text_buffer_printf block in metrics_render. */
#define _GNU_SOURCE
#include "metrics.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "arbiter.h"
#include "log.h"

struct metrics_client {
    struct metrics *metrics;
    struct metrics_client *next;
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
        uv_stream_t stream;
        uv_handle_t handle;
    } connection;
    uv_timer_t timer;
    uv_write_t write;
    unsigned open_handles;
    bool closing;
    bool responded;
    char *head; /* response head and body, alive until the write completes */
    char *body;
    size_t length;
    char request[METRICS_REQUEST_MAX];
};

/* ---- text buffer ---- */

void text_buffer_printf(struct text_buffer *b, const char *fmt, ...) {
    if (b->truncated)
        return;
    for (;;) {
        size_t room = b->capacity - b->length;
        va_list args;
        va_start(args, fmt);
        int n = b->data ? vsnprintf(b->data + b->length, room, fmt, args) : -2;
        va_end(args);
        if (n >= 0 && (size_t)n < room) {
            b->length += (size_t)n;
            return;
        }
        if (n == -1) {
            b->truncated = true;
            return;
        }
        size_t capacity = b->capacity ? b->capacity * 2 : 16384;
        if (b->limit && capacity > b->limit)
            capacity = b->limit;
        if (capacity <= b->capacity) {
            b->truncated = true;
            return;
        }
        char *data = realloc(b->data, capacity);
        if (!data) {
            b->truncated = true;
            return;
        }
        b->data = data;
        b->capacity = capacity;
    }
}

void text_buffer_free(struct text_buffer *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

void metrics_escape_label(struct text_buffer *b, const char *value) {
    for (const char *p = value; *p; p++) {
        if (*p == '\\')
            text_buffer_printf(b, "\\\\");
        else if (*p == '"')
            text_buffer_printf(b, "\\\"");
        else if (*p == '\n')
            text_buffer_printf(b, "\\n");
        else
            text_buffer_printf(b, "%c", *p);
    }
}

/* ---- rendering ---- */

static void header(struct text_buffer *b, const char *name, const char *type, const char *help) {
    text_buffer_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* --preload: the zygote that forks the workers (absent without --preload). */
static void metrics_zygote(struct text_buffer *b, const struct arbiter *a) {
    if (!a->config->preload)
        return;
    const struct fork_server *server = &a->fork_server;
    const struct zygote *z = fork_server_zygote(server);
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
static void metrics_autoscale(struct text_buffer *b, const struct arbiter *a) {
    const struct autoscale *s = &a->autoscale;
    header(b, "arbiter_autoscale_enabled", "gauge", "1 while autoscaling is on.");
    text_buffer_printf(b, "arbiter_autoscale_enabled %d\n", s->policy.enabled);
    header(b, "arbiter_autoscale_min_workers", "gauge", "Lower bound of autoscaling.");
    text_buffer_printf(b, "arbiter_autoscale_min_workers %u\n", s->policy.min);
    header(b, "arbiter_autoscale_max_workers", "gauge", "Upper bound of autoscaling.");
    text_buffer_printf(b, "arbiter_autoscale_max_workers %u\n", s->policy.max);
    header(b, "arbiter_autoscale_queue", "gauge", "Connections waiting in the accept queues (smoothed).");
    text_buffer_printf(b, "arbiter_autoscale_queue %.3f\n", s->trend.queue);
    header(b, "arbiter_autoscale_busy", "gauge", "Fraction of ready workers with requests in flight (smoothed).");
    text_buffer_printf(b, "arbiter_autoscale_busy %.3f\n", s->trend.busy);
    header(b, "arbiter_autoscale_lag_seconds", "gauge", "Event-loop lag of the ready workers (smoothed mean).");
    text_buffer_printf(b, "arbiter_autoscale_lag_seconds %.4f\n", s->trend.lag_s);
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

/* Every live worker: the slots' active and successor workers, then the draining ones. */
static size_t collect_workers(const struct pool *pool, const struct worker **out, size_t max) {
    size_t n = 0;
    for (size_t i = 0; i < pool->slot_count; i++) {
        if (pool->slots[i]->active && n < max)
            out[n++] = pool->slots[i]->active;
        if (pool->slots[i]->successor && n < max)
            out[n++] = pool->slots[i]->successor;
    }
    for (const struct worker *w = pool->draining; w && n < max; w = w->next)
        out[n++] = w;
    return n;
}

/* A live worker's place in arbiter_workers{state=...}: booting (and spawning), ready, draining. */
static size_t worker_state_index(const struct worker *w) {
    return w->state == WORKER_READY ? 1 : w->state == WORKER_DRAINING ? 2 : 0;
}

void metrics_render(struct arbiter *a, struct text_buffer *b) {
    const struct pool *pool = &a->pool;
    header(b, "arbiter_build_info", "gauge", "Version of the arbiter binary.");
    text_buffer_printf(b, "arbiter_build_info{version=\"%s\",build=\"%s\"} 1\n", ARBITER_VERSION, a->upgrade.build);
    header(b, "arbiter_upgrades_total", "counter", "In-place upgrades this process went through (same pid).");
    text_buffer_printf(b, "arbiter_upgrades_total %u\n", a->upgrade.upgrades);
    header(b, "arbiter_up_seconds", "gauge", "Seconds since the arbiter started.");
    text_buffer_printf(b, "arbiter_up_seconds %.3f\n", (double)(uv_now(a->loop) - a->started_ms) / 1000.0);
    header(b, "arbiter_stopping", "gauge", "1 while the arbiter drains to stop (lame duck).");
    text_buffer_printf(b, "arbiter_stopping %d\n", a->state == ARBITER_STOPPING);
    header(b, "arbiter_target_workers", "gauge", "Number of worker slots asked for.");
    text_buffer_printf(b, "arbiter_target_workers %u\n", pool->target);

    unsigned by_state[5] = {0}; /* booting ready draining backoff crashloop */
    for (size_t i = 0; i < pool->slot_count; i++) {
        const struct slot *slot = pool->slots[i];
        if (!slot->active)
            by_state[slot->state == SLOT_CRASHLOOP ? 4 : 3]++;
        else
            by_state[worker_state_index(slot->active)]++;
        if (slot->successor)
            by_state[worker_state_index(slot->successor)]++;
    }
    for (const struct worker *w = pool->draining; w; w = w->next)
        by_state[worker_state_index(w)]++; /* replaced by a reload, a recycle or a scale-down: draining */
    static const char *const state_names[] = {"booting", "ready", "draining", "backoff", "crashloop"};
    header(b, "arbiter_workers", "gauge", "Workers by state.");
    for (size_t i = 0; i < 5; i++)
        text_buffer_printf(b, "arbiter_workers{state=\"%s\"} %u\n", state_names[i], by_state[i]);

    header(b, "arbiter_worker_restarts_total", "counter", "Restarts of crashed or killed workers.");
    text_buffer_printf(b, "arbiter_worker_restarts_total %llu\n", (unsigned long long)pool->restarts_total);
    header(b, "arbiter_worker_exits_total", "counter", "Worker exits by reason.");
    for (int r = 0; r < EXIT_REASON_COUNT; r++)
        text_buffer_printf(b, "arbiter_worker_exits_total{reason=\"%s\"} %llu\n", exit_reason_name((enum exit_reason)r),
                           (unsigned long long)pool->exits[r]);
    header(b, "arbiter_reloads_total", "counter", "Rolling reloads started.");
    text_buffer_printf(b, "arbiter_reloads_total %llu\n", (unsigned long long)a->pool.reload.started_total);
    header(b, "arbiter_control_commands_total", "counter", "Requests received on the control socket.");
    text_buffer_printf(b, "arbiter_control_commands_total %llu\n", (unsigned long long)a->control.commands_total);
    header(b, "arbiter_log_lines_dropped_total", "counter",
           "Log lines (the arbiter's and the workers') dropped because the log output was blocked or failing.");
    text_buffer_printf(b, "arbiter_log_lines_dropped_total %llu\n", (unsigned long long)log_lines_dropped());
    header(b, "arbiter_log_write_errors_total", "counter",
           "Failed writes to the log output (ENOSPC, EIO, EPIPE...; a failing output is retried every second).");
    text_buffer_printf(b, "arbiter_log_write_errors_total %llu\n", (unsigned long long)log_write_errors());

    size_t capacity = pool->slot_count * 2 + 64;
    const struct worker **workers = calloc(capacity, sizeof *workers);
    size_t count = workers ? collect_workers(pool, workers, capacity) : 0;
    uint64_t requests = pool->requests_of_exited, in_flight = 0;
    for (size_t i = 0; i < count; i++) {
        requests += workers[i]->requests;
        in_flight += workers[i]->in_flight;
    }
    header(b, "arbiter_requests_total", "counter", "Requests served by all workers, as of their last heartbeat.");
    text_buffer_printf(b, "arbiter_requests_total %llu\n", (unsigned long long)requests);
    header(b, "arbiter_requests_in_flight", "gauge", "Requests being served, as of the last heartbeats.");
    text_buffer_printf(b, "arbiter_requests_in_flight %llu\n", (unsigned long long)in_flight);

    /* Memory and CPU come from each worker's cached /proc figures (see WORKER_STATS_MAX_AGE_MS). */
    static const struct {
        const char *name, *type, *help, *fmt;
        int field;
    } per_worker_metrics[] = {
        {"arbiter_worker_requests_total", "counter", "Requests served by this worker.", "%.0f", 0},
        {"arbiter_worker_requests_in_flight", "gauge", "Requests this worker is serving.", "%.0f", 1},
        {"arbiter_worker_memory_pss_bytes", "gauge", "Proportional set size of the worker (refreshed every 10 s).", "%.0f", 2},
        {"arbiter_worker_memory_rss_bytes", "gauge", "Resident set size of the worker (refreshed every 10 s).", "%.0f", 3},
        {"arbiter_worker_cpu_seconds_total", "counter", "CPU time (user + system) of the worker (refreshed every 10 s).", "%.2f", 4},
        {"arbiter_worker_uptime_seconds", "gauge", "Seconds since the worker started.", "%.3f", 5},
        {"arbiter_worker_memory_shared_bytes", "gauge", "Resident memory the worker shares with other processes (with --preload: the zygote's pages it has not written to).", "%.0f", 6},
        {"arbiter_worker_memory_private_bytes", "gauge", "Resident memory only this worker maps.", "%.0f", 7},
        {"arbiter_worker_connections", "gauge", "Open connections of the worker (from the board).", "%.0f", 8},
    };
    for (size_t m = 0; m < sizeof per_worker_metrics / sizeof per_worker_metrics[0]; m++) {
        header(b, per_worker_metrics[m].name, per_worker_metrics[m].type, per_worker_metrics[m].help);
        for (size_t i = 0; i < count; i++) {
            const struct worker *w = workers[i];
            const struct proc_stats *s = &w->stats;
            const struct board_entry *entry = board_get(&a->board, w->board_index);
            double values[] = {(double)w->requests, (double)w->in_flight, (double)s->pss_bytes, (double)s->rss_bytes,
                               s->cpu_seconds, (double)(uv_now(a->loop) - w->started_ms) / 1000.0,
                               (double)s->shared_bytes, (double)s->private_bytes,
                               entry ? (double)entry->connections : 0.0};
            int field = per_worker_metrics[m].field;
            if (field == 8 && !entry)
                continue;
            if (w->stats_ms || field < 2 || field == 5 || field == 8)
                per_worker(b, per_worker_metrics[m].name, w->slot_id, w->pid, per_worker_metrics[m].fmt, values[field]);
        }
    }
    free(workers);
    metrics_zygote(b, a);
    metrics_autoscale(b, a);

    header(b, "arbiter_listen_queue_length", "gauge", "Connections waiting in the listener's accept queue (TCP_INFO).");
    struct text_buffer maxima = {.limit = 1 << 20};
    for (size_t i = 0; i < a->listeners.count; i++) {
        unsigned waiting, size;
        if (listener_queue(a->listeners.items[i].fd, &waiting, &size) != 0)
            continue; /* closed at the end of a lame duck, or not TCP */
        text_buffer_printf(b, "arbiter_listen_queue_length{listener=\"");
        metrics_escape_label(b, a->listeners.items[i].name);
        text_buffer_printf(b, "\"} %u\n", waiting);
        text_buffer_printf(&maxima, "arbiter_listen_queue_max{listener=\"");
        metrics_escape_label(&maxima, a->listeners.items[i].name);
        text_buffer_printf(&maxima, "\"} %u\n", size);
    }
    header(b, "arbiter_listen_queue_max", "gauge", "Size of the listener's accept queue (backlog).");
    if (maxima.data)
        text_buffer_printf(b, "%.*s", (int)maxima.length, maxima.data);
    text_buffer_free(&maxima);
}

int metrics_health(const struct arbiter *a, char *reason, size_t size) {
    unsigned ready = pool_ready_count(&a->pool);
    if (a->state == ARBITER_STOPPING) {
        snprintf(reason, size, "stopping: draining, take this node out of rotation");
        return 503;
    }
    if (ready < a->config->min_ready) {
        snprintf(reason, size, "%u/%u workers ready, fewer than --min-ready %u", ready, a->pool.target, a->config->min_ready);
        return 503;
    }
    snprintf(reason, size, "ok: %u/%u workers ready", ready, a->pool.target);
    return 200;
}

/* ---- server ---- */

static void metrics_client_on_close(uv_handle_t *handle) {
    struct metrics_client *client = handle->data;
    if (--client->open_handles == 0) {
        free(client->head);
        free(client->body);
        free(client);
    }
}

static void metrics_client_close(struct metrics_client *client) {
    if (client->closing)
        return;
    client->closing = true;
    struct metrics *metrics = client->metrics;
    for (struct metrics_client **p = &metrics->clients; *p; p = &(*p)->next) {
        if (*p == client) {
            *p = client->next;
            metrics->client_count--;
            break;
        }
    }
    uv_close(&client->connection.handle, metrics_client_on_close);
    uv_close((uv_handle_t *)&client->timer, metrics_client_on_close);
}

static void metrics_on_written(uv_write_t *req, int status) {
    (void)status;
    metrics_client_close(req->data);
}

/* Sends the response and closes; takes ownership of body (heap, may be NULL for an empty body).
 * A HEAD request gets the same headers, Content-Length included, without the body. */
static void metrics_respond(struct metrics_client *client, int code, const char *content_type, char *body,
                            size_t body_length, bool head_only) {
    const char *reason = code == 200 ? "OK" : code == 400 ? "Bad Request" : code == 404 ? "Not Found"
                       : code == 405 ? "Method Not Allowed" : code == 431 ? "Request Header Fields Too Large"
                                     : "Service Unavailable";
    client->responded = true;
    client->body = body;
    uv_read_stop(&client->connection.stream);
    struct text_buffer head = {.limit = 4096};
    text_buffer_printf(&head,
                       "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
                       "Connection: close\r\n\r\n",
                       code, reason, content_type, body_length);
    client->head = head.data;
    if (head.truncated || !head.data) {
        metrics_client_close(client);
        return;
    }
    uv_buf_t bufs[2] = {uv_buf_init(head.data, (unsigned)head.length), uv_buf_init(body ? body : "", (unsigned)body_length)};
    client->write.data = client;
    if (uv_write(&client->write, &client->connection.stream, bufs, body_length && !head_only ? 2 : 1, metrics_on_written) != 0)
        metrics_client_close(client);
}

static void metrics_respond_text(struct metrics_client *client, int code, const char *text, bool head_only) {
    char *body = strdup(text);
    metrics_respond(client, code, "text/plain; charset=utf-8", body, body ? strlen(body) : 0, head_only);
}

/* Parses "METHOD SP PATH SP HTTP/1.x" strictly: anything else is a bad request. */
static bool parse_request_line(const char *request, size_t length, char *method, size_t method_size, char *path,
                               size_t path_size) {
    const char *end = memchr(request, '\n', length);
    if (!end)
        return false;
    size_t line = (size_t)(end - request);
    if (line > 0 && request[line - 1] == '\r')
        line--;
    const char *space = memchr(request, ' ', line);
    if (!space || space == request || (size_t)(space - request) >= method_size)
        return false;
    for (const char *p = request; p < space; p++)
        if (*p < 'A' || *p > 'Z')
            return false;
    const char *target = space + 1;
    const char *second = memchr(target, ' ', line - (size_t)(target - request));
    if (!second || second == target || (size_t)(second - target) >= path_size || target[0] != '/')
        return false;
    size_t version = line - (size_t)(second + 1 - request);
    if (version != 8 || memcmp(second + 1, "HTTP/1.", 7) != 0 || (second[8] != '0' && second[8] != '1'))
        return false;
    memcpy(method, request, (size_t)(space - request));
    method[space - request] = '\0';
    memcpy(path, target, (size_t)(second - target));
    path[second - target] = '\0';
    return true;
}

struct metrics_request metrics_request_parse(const char *bytes, size_t length, size_t capacity) {
    struct metrics_request request = {METRICS_ROUTE_INCOMPLETE, false};
    if (!memmem(bytes, length, "\r\n\r\n", 4) && !memmem(bytes, length, "\n\n", 2)) {
        if (length > 0 && (bytes[0] < 'A' || bytes[0] > 'Z'))
            request.route = METRICS_ROUTE_NOT_HTTP; /* no use waiting for the rest */
        else if (length >= capacity)
            request.route = METRICS_ROUTE_TOO_LARGE;
        return request;
    }
    char method[16], path[256];
    if (!parse_request_line(bytes, length, method, sizeof method, path, sizeof path)) {
        request.route = METRICS_ROUTE_BAD_REQUEST;
        return request;
    }
    request.head_only = strcmp(method, "HEAD") == 0;
    path[strcspn(path, "?")] = '\0';
    if (strcmp(method, "GET") != 0 && !request.head_only)
        request.route = METRICS_ROUTE_BAD_METHOD;
    else if (strcmp(path, "/metrics") == 0)
        request.route = METRICS_ROUTE_METRICS;
    else if (strcmp(path, "/healthz") == 0)
        request.route = METRICS_ROUTE_HEALTHZ;
    else if (strcmp(path, "/livez") == 0)
        request.route = METRICS_ROUTE_LIVEZ;
    else
        request.route = METRICS_ROUTE_NOT_FOUND;
    return request;
}

/* Answers a decided request; INCOMPLETE is not one (the caller reads on). */
static void metrics_handle_request(struct metrics_client *client, struct metrics_request request) {
    struct arbiter *a = client->metrics->arbiter;
    switch (request.route) {
    case METRICS_ROUTE_INCOMPLETE:
        break;
    case METRICS_ROUTE_METRICS: {
        struct text_buffer body = {.limit = 32u << 20};
        metrics_render(a, &body);
        metrics_respond(client, 200, "text/plain; version=0.0.4; charset=utf-8", body.data, body.length,
                        request.head_only);
        break;
    }
    case METRICS_ROUTE_HEALTHZ: {
        char reason[192];
        int code = metrics_health(a, reason, sizeof reason - 1);
        strcat(reason, "\n");
        metrics_respond_text(client, code, reason, request.head_only);
        break;
    }
    case METRICS_ROUTE_LIVEZ:
        /* Liveness, not readiness: answering proves the event loop turns. It stays 200 while the
         * arbiter drains or restarts workers, so a liveness probe never kills a pod mid-drain. */
        metrics_respond_text(client, 200, "alive\n", request.head_only);
        break;
    case METRICS_ROUTE_NOT_FOUND:
        metrics_respond_text(client, 404, "not found: try /metrics, /healthz or /livez\n", false);
        break;
    case METRICS_ROUTE_BAD_METHOD:
        metrics_respond_text(client, 405, "only GET and HEAD\n", false);
        break;
    case METRICS_ROUTE_BAD_REQUEST:
        metrics_respond_text(client, 400, "bad request: send `GET /metrics HTTP/1.1`\n", false);
        break;
    case METRICS_ROUTE_NOT_HTTP:
        metrics_respond_text(client, 400, "bad request: this is plain HTTP (a TLS client?)\n", false);
        break;
    case METRICS_ROUTE_TOO_LARGE:
        metrics_respond_text(client, 431, "request headers too large\n", false);
        break;
    }
}

static void metrics_on_timeout(uv_timer_t *timer) {
    metrics_client_close(timer->data); /* slow or silent client: bounded time, then gone */
}

static void metrics_on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
    struct metrics_client *client = handle->data;
    (void)suggested;
    *buf = uv_buf_init(client->request + client->length, (unsigned)(sizeof client->request - client->length));
}

static void metrics_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    struct metrics_client *client = stream->data;
    (void)buf;
    if (client->responded)
        return;
    if (nread < 0) {
        metrics_client_close(client);
        return;
    }
    client->length += (size_t)nread;
    metrics_handle_request(client, metrics_request_parse(client->request, client->length, sizeof client->request));
}

static void metrics_on_connection(uv_stream_t *server, int status) {
    struct metrics *metrics = server->data;
    if (status < 0)
        return;
    struct metrics_client *client = calloc(1, sizeof *client);
    if (!client)
        return;
    client->metrics = metrics;
    uv_loop_t *loop = metrics->arbiter->loop;
    if (server->type == UV_TCP)
        uv_tcp_init(loop, &client->connection.tcp);
    else
        uv_pipe_init(loop, &client->connection.pipe, 0);
    uv_timer_init(loop, &client->timer);
    client->connection.handle.data = client;
    client->timer.data = client;
    client->open_handles = 2;
    client->next = metrics->clients;
    metrics->clients = client;
    metrics->client_count++;
    if (uv_accept(server, &client->connection.stream) != 0) {
        metrics_client_close(client);
        return;
    }
    if (metrics->client_count > METRICS_MAX_CLIENTS) {
        /* Full: the oldest client still sending its request goes, so idle connections can never
         * keep a load balancer's health check out. */
        struct metrics_client *oldest = NULL;
        for (struct metrics_client *c = metrics->clients; c; c = c->next)
            if (!c->responded && c != client)
                oldest = c; /* the list is newest first */
        metrics_client_close(oldest ? oldest : client);
        if (!oldest)
            return;
    }
    uv_timer_start(&client->timer, metrics_on_timeout, METRICS_CLIENT_TIMEOUT_MS, 0);
    uv_read_start(&client->connection.stream, metrics_on_alloc, metrics_on_read);
}

/* Only a socket file left by a dead process is removed (as for the listeners): whatever else is at
 * PATH, a regular file or a live server's socket, is someone's and stays. */
static int metrics_prepare_path(const char *address, const char *path, char *err, size_t err_size) {
    switch (listener_clear_stale_unix(path)) {
    case STALE_SOCKET_FREE:
        return 0;
    case STALE_SOCKET_REPLACED:
        log_info("stale_socket_replaced", "--metrics %s: replacing a stale socket file nobody listened on", address);
        return 0;
    case STALE_SOCKET_NOT_A_SOCKET:
        snprintf(err, err_size, "--metrics %s: the path exists and is not a socket; remove it or choose another path", address);
        return -1;
    case STALE_SOCKET_IN_USE:
        snprintf(err, err_size, "--metrics %s: another process is serving on this socket; stop it or choose another path",
                 address);
        return -1;
    case STALE_SOCKET_ERROR:
        break;
    }
    snprintf(err, err_size, "--metrics %s: cannot check or remove the existing file: %s", address, strerror(errno));
    return -1;
}

int metrics_start(struct metrics *metrics, struct arbiter *arbiter, const char *address, char *err, size_t err_size) {
    memset(metrics, 0, sizeof *metrics);
    metrics->arbiter = arbiter;
    struct bind_address parsed;
    char reason[256];
    if (listener_parse_address(address, &parsed, reason, sizeof reason) != 0 || parsed.kind == BIND_FD) {
        snprintf(err, err_size, "--metrics %s: %s", address, parsed.kind == BIND_FD ? "use HOST:PORT or unix:PATH" : reason);
        return -1;
    }
    int rc;
    if (parsed.kind == BIND_INET) {
        uv_tcp_init(arbiter->loop, &metrics->server.tcp);
        metrics->listening = true;
        rc = uv_tcp_bind(&metrics->server.tcp, (struct sockaddr *)&parsed.addr, 0);
    } else {
        const char *path = ((struct sockaddr_un *)&parsed.addr)->sun_path;
        if (metrics_prepare_path(address, path, err, err_size) != 0)
            return -1;
        uv_pipe_init(arbiter->loop, &metrics->server.pipe, 0);
        metrics->listening = true;
        rc = uv_pipe_bind(&metrics->server.pipe, path);
        struct stat st;
        if (rc == 0 && stat(path, &st) == 0) {
            snprintf(metrics->unix_path, sizeof metrics->unix_path, "%s", path);
            metrics->unix_inode = st.st_ino;
        }
    }
    metrics->server.handle.data = metrics;
    if (rc == 0)
        rc = uv_listen(&metrics->server.stream, 64, metrics_on_connection);
    if (rc != 0) {
        snprintf(err, err_size, "--metrics %s: cannot listen: %s", address, uv_strerror(rc));
        return -1;
    }
    log_info("metrics", "metrics on http://%s/metrics and /healthz", address);
    return 0;
}

void metrics_close(struct metrics *metrics) {
    if (!metrics->listening)
        return;
    metrics->listening = false;
    while (metrics->clients)
        metrics_client_close(metrics->clients);
    uv_close(&metrics->server.handle, NULL); /* embedded in struct arbiter */
    struct stat st;
    /* Unlink only if the file is still ours: a newer arbiter may have replaced it. */
    if (metrics->unix_path[0] && stat(metrics->unix_path, &st) == 0 && st.st_ino == metrics->unix_inode)
        unlink(metrics->unix_path);
}

/* After an in-place upgrade: the listening socket the previous image had. */
int metrics_adopt(struct metrics *metrics, struct arbiter *arbiter, const char *address, int fd, char *err,
                  size_t err_size) {
    memset(metrics, 0, sizeof *metrics);
    metrics->arbiter = arbiter;
    struct bind_address parsed;
    char reason[256];
    if (listener_parse_address(address, &parsed, reason, sizeof reason) != 0) {
        snprintf(err, err_size, "--metrics %s: %s", address, reason);
        return -1;
    }
    int rc;
    if (parsed.kind == BIND_UNIX) {
        uv_pipe_init(arbiter->loop, &metrics->server.pipe, 0);
        metrics->listening = true;
        rc = uv_pipe_open(&metrics->server.pipe, fd);
        snprintf(metrics->unix_path, sizeof metrics->unix_path, "%s", ((struct sockaddr_un *)&parsed.addr)->sun_path);
    } else {
        uv_tcp_init(arbiter->loop, &metrics->server.tcp);
        metrics->listening = true;
        rc = uv_tcp_open(&metrics->server.tcp, fd);
    }
    metrics->server.handle.data = metrics;
    if (rc == 0)
        rc = uv_listen(&metrics->server.stream, 64, metrics_on_connection);
    if (rc != 0) {
        snprintf(err, err_size, "--metrics %s: cannot adopt fd %d from the previous arbiter: %s", address, fd, uv_strerror(rc));
        return -1;
    }
    return 0;
}

int metrics_fd(const struct metrics *metrics) {
    uv_os_fd_t fd;
    return metrics->listening && uv_fileno(&metrics->server.handle, &fd) == 0 ? fd : -1;
}
