/* zygote.h - the fork server (--preload): one zygote per app generation forks the workers. */
#ifndef ARBITER_ZYGOTE_H
#define ARBITER_ZYGOTE_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#include "backoff.h"
#include "child.h"
#include "listener.h"
#include "procstat.h"
#include "reaper.h"
#include "spawner.h"

enum zygote_state { ZYGOTE_IMPORTING, ZYGOTE_READY, ZYGOTE_EXITED };

struct fork_server;

/* One interpreter that imported the app (no event loop, no lifespan), froze its objects with
 * gc.freeze(), and now forks a worker per request. */
struct zygote {
    struct fork_server *server;
    unsigned generation;
    enum zygote_state state;
    bool stop_requested;
    int pid;
    uint64_t started_ms;
    uint64_t ready_ms;
    double import_seconds; /* as the zygote measured it */
    uint64_t forks;
    struct proc_stats stats;
    int64_t exit_status;
    int term_signal;
    char refusal[200]; /* zygote_refused: why the app it imported cannot be forked; "" otherwise */

    struct child child; /* the process: spawn, channel, output (import errors, prints), reaper entry */
};

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
    const char *shim_dir;
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

void fork_server_init(struct fork_server *server, struct pool *pool, const char *shim_dir);

/* The zygote serving now (NULL between a death and its restart), for status and metrics. */
const struct zygote *fork_server_zygote(const struct fork_server *server);

const char *zygote_state_name(enum zygote_state state);

/* In-place upgrade: refused while a fork or a zygote start is under way (busy); the serving zygote
 * as JSON (its channel under "channel_fd"), and its adoption by the next image. */
bool fork_server_busy(const struct fork_server *server);

/* SIGUSR1 with --log-file: hands the reopened log file to the zygote (and so to its future workers). */
void fork_server_send_log_file(struct fork_server *server);
json_t *fork_server_save(const struct fork_server *server);
int fork_server_restore(struct fork_server *server, json_t *saved, char *err, size_t err_size);

#endif
