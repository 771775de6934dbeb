/* fork_server.h - the fork server (--preload): the spawner whose workers are forked by a zygote.
 *
 * One name a concept: the fork server is this spawner (spawner.h; status shows "spawner":"fork");
 * the zygote is the process it runs, one per app generation (zygote.h); --preload turns it on. */
#ifndef ARBITER_FORK_SERVER_H
#define ARBITER_FORK_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#include "backoff.h"
#include "listener.h"
#include "spawner.h"
#include "zygote.h"

/* A worker waiting for its fork: the worker is SPAWNING, the fds are what its process gets. */
struct fork_request {
    struct worker *worker;
    int channel_fd; /* the worker's end of its channel */
    int listen_fds[LISTENER_MAX];
    size_t listen_fd_count;
    unsigned max_requests;
    int board_fd; /* the board, sent after the listeners when board_index is set */
    unsigned board_index;
    struct fork_request *next;
};

struct fork_server {
    struct spawner spawner; /* pool->spawner points here */
    struct zygote *current; /* the generation that serves: restarts, scale-ups, recycles */
    struct zygote *next;    /* importing a reload's new code; forks wait for it */
    struct fork_request *queue, **queue_tail;
    struct fork_request *in_flight; /* sent to a zygote, waiting for "forked" */
    struct zygote *in_flight_zygote;
    bool stopping;
    struct backoff backoff;
    uv_timer_t restart_timer;
    uv_timer_t fork_deadline;
    uint64_t zygote_restarts;
    unsigned live_zygotes; /* started and not yet reaped: current, next and retiring ones */
};

/* Its timers on loop; it works with the env pool_init gives its spawner (spawner.env). */
void fork_server_init(struct fork_server *server, uv_loop_t *loop);

/* The zygote serving now (NULL between a death and its restart), for status and metrics. */
const struct zygote *fork_server_zygote(const struct fork_server *server);

/* In-place upgrade: refused while a fork or a zygote start is under way (busy); the serving zygote
 * as JSON (its channel under "channel_fd"), and its adoption by the next image. */
bool fork_server_busy(const struct fork_server *server);

/* SIGUSR1 with --log-file: hands the reopened log file to the zygote (and so to its future workers). */
void fork_server_send_log_file(struct fork_server *server);
json_t *fork_server_save(const struct fork_server *server);
int fork_server_restore(struct fork_server *server, json_t *saved, char *err, size_t err_size);

#endif
