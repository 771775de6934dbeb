/* metrics.h - --metrics ADDR: the HTTP server of Prometheus' /metrics (metrics_page.h), the load
 * balancer's /healthz and /livez. */
#ifndef ARBITER_METRICS_H
#define ARBITER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <uv.h>

#define METRICS_REQUEST_MAX 8192
#define METRICS_CLIENT_TIMEOUT_MS 5000u
#define METRICS_MAX_CLIENTS 64

struct autoscale;
struct metrics_client;
struct status_sources;

/* What a client's request asks for, decided from the bytes received so far. */
enum metrics_route {
    METRICS_ROUTE_INCOMPLETE,  /* the headers have not ended: read more */
    METRICS_ROUTE_METRICS,     /* 200: the /metrics page */
    METRICS_ROUTE_HEALTHZ,     /* 200 or 503: /healthz */
    METRICS_ROUTE_LIVEZ,       /* 200: /livez, liveness (also while draining) */
    METRICS_ROUTE_NOT_FOUND,   /* 404: another path */
    METRICS_ROUTE_BAD_METHOD,  /* 405: neither GET nor HEAD */
    METRICS_ROUTE_BAD_REQUEST, /* 400: the request line is not "METHOD SP /PATH SP HTTP/1.x" */
    METRICS_ROUTE_NOT_HTTP,    /* 400: the first byte cannot start a method (a TLS client?) */
    METRICS_ROUTE_TOO_LARGE,   /* 431: the buffer is full and the headers have not ended */
};

struct metrics_request {
    enum metrics_route route;
    bool head_only; /* HEAD: the response has no body */
};

/* Decides a request from the `length` bytes a client has sent so far into a buffer of `capacity`
 * bytes. Pure (no I/O, no state, no NUL needed), for the server, the unit tests and the fuzzer. */
struct metrics_request metrics_request_parse(const char *bytes, size_t length, size_t capacity);

struct metrics {
    const struct status_sources *sources; /* what the page and /healthz read */
    const struct autoscale *autoscale;
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
        uv_stream_t stream;
        uv_handle_t handle;
    } server;
    bool listening;
    char unix_path[108]; /* unix:PATH: the socket file we created, removed at close if still ours */
    ino_t unix_inode;
    struct metrics_client *clients;
    unsigned client_count;
};

int metrics_start(struct metrics *metrics, const struct status_sources *sources, const struct autoscale *autoscale,
                  const char *address, char *err, size_t err_size);
/* In-place upgrade: serve on the listening fd the previous image handed over. */
int metrics_adopt(struct metrics *metrics, const struct status_sources *sources, const struct autoscale *autoscale,
                  const char *address, int fd, char *err, size_t err_size);
/* The listening fd (to hand over in an upgrade), or -1. */
int metrics_fd(const struct metrics *metrics);
void metrics_close(struct metrics *metrics);

#endif
