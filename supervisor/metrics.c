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
 * The page itself is metrics_page.c; the readiness rule is status_health (status.c). */
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

#include "log.h"
#include "metrics_page.h"

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
    const struct metrics *m = client->metrics;
    switch (request.route) {
    case METRICS_ROUTE_INCOMPLETE:
        break;
    case METRICS_ROUTE_METRICS: {
        struct text_buffer body = {.limit = 32u << 20};
        metrics_render(m->sources, m->autoscale, &body);
        metrics_respond(client, 200, "text/plain; version=0.0.4; charset=utf-8", body.data, body.length,
                        request.head_only);
        break;
    }
    case METRICS_ROUTE_HEALTHZ: {
        char reason[192];
        int code = status_health(m->sources, reason, sizeof reason - 1);
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
    uv_loop_t *loop = metrics->sources->loop;
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

int metrics_start(struct metrics *metrics, const struct status_sources *sources, const struct autoscale *autoscale,
                  const char *address, char *err, size_t err_size) {
    memset(metrics, 0, sizeof *metrics);
    metrics->sources = sources;
    metrics->autoscale = autoscale;
    struct bind_address parsed;
    char reason[256];
    if (listener_parse_address(address, &parsed, reason, sizeof reason) != 0 || parsed.kind == BIND_FD) {
        snprintf(err, err_size, "--metrics %s: %s", address, parsed.kind == BIND_FD ? "use HOST:PORT or unix:PATH" : reason);
        return -1;
    }
    int rc;
    if (parsed.kind == BIND_INET) {
        uv_tcp_init(sources->loop, &metrics->server.tcp);
        metrics->listening = true;
        rc = uv_tcp_bind(&metrics->server.tcp, (struct sockaddr *)&parsed.addr, 0);
    } else {
        const char *path = ((struct sockaddr_un *)&parsed.addr)->sun_path;
        if (metrics_prepare_path(address, path, err, err_size) != 0)
            return -1;
        uv_pipe_init(sources->loop, &metrics->server.pipe, 0);
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
    uv_close(&metrics->server.handle, NULL); /* embedded in struct metrics */
    struct stat st;
    /* Unlink only if the file is still ours: a newer arbiter may have replaced it. */
    if (metrics->unix_path[0] && stat(metrics->unix_path, &st) == 0 && st.st_ino == metrics->unix_inode)
        unlink(metrics->unix_path);
}

/* After an in-place upgrade: the listening socket the previous image had. */
int metrics_adopt(struct metrics *metrics, const struct status_sources *sources, const struct autoscale *autoscale,
                  const char *address, int fd, char *err,
                  size_t err_size) {
    memset(metrics, 0, sizeof *metrics);
    metrics->sources = sources;
    metrics->autoscale = autoscale;
    struct bind_address parsed;
    char reason[256];
    if (listener_parse_address(address, &parsed, reason, sizeof reason) != 0) {
        snprintf(err, err_size, "--metrics %s: %s", address, reason);
        return -1;
    }
    int rc;
    if (parsed.kind == BIND_UNIX) {
        uv_pipe_init(sources->loop, &metrics->server.pipe, 0);
        metrics->listening = true;
        rc = uv_pipe_open(&metrics->server.pipe, fd);
        snprintf(metrics->unix_path, sizeof metrics->unix_path, "%s", ((struct sockaddr_un *)&parsed.addr)->sun_path);
    } else {
        uv_tcp_init(sources->loop, &metrics->server.tcp);
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
