/* zygote.h - the zygote (--preload): one interpreter that imported the app and forks workers.
 *
 * This is the process; the spawner that runs zygotes, queues fork requests and restarts a zygote
 * that died is the fork server (fork_server.h). A zygote reports what it says and how it ended
 * through struct zygote_events, and calls nothing of the fork server. */
#ifndef ARBITER_ZYGOTE_H
#define ARBITER_ZYGOTE_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#include "child.h"
#include "procstat.h"

enum zygote_state { ZYGOTE_IMPORTING, ZYGOTE_READY, ZYGOTE_EXITED };

struct config;
struct zygote;

/* What a zygote tells its owner (the fork server). */
struct zygote_events {
    void (*ready)(struct zygote *zygote, void *data); /* the app is imported: it may fork */
    /* The answer to the fork request on the wire: pid > 0 forked (fds: where the worker's fds are,
     * NULL from an older zygote), or -1 with error. */
    void (*answer)(struct zygote *zygote, int pid, const char *error, const json_t *fds, void *data);
    /* Reaped (exit_status, term_signal set; state EXITED); the owner closes it (zygote_close). */
    void (*exited)(struct zygote *zygote, bool was_ready, void *data);
    void *data;
};

/* One interpreter that imported the app (no event loop, no lifespan), froze its objects with
 * gc.freeze(), and now forks a worker per request. */
struct zygote {
    struct zygote_events events;
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

const char *zygote_state_name(enum zygote_state state);

/* Spawns a zygote importing generation's code (argv, env: its command line; cwd: --chdir). Returns
 * it IMPORTING with its pid, not yet watched (zygote_watch); or NULL with err set. */
struct zygote *zygote_start(uv_loop_t *loop, struct reaper *reaper, const char *cwd, unsigned generation, char **argv,
                            char **env, struct zygote_events events, char *err, size_t err_size);

/* The reaper watches it from now on. Returns true when it was already reaped: events.exited ran. */
bool zygote_watch(struct zygote *zygote);

/* Sends a signal to a running zygote; one already gone is not an error. */
void zygote_signal(struct zygote *zygote, int signum);

/* Closes its handles; frees it once they are closed. */
void zygote_close(struct zygote *zygote);

/* In-place upgrade: the zygote as JSON (its channel under "channel_fd"), and its adoption. */
json_t *zygote_save(const struct zygote *zygote);
struct zygote *zygote_restore(uv_loop_t *loop, struct reaper *reaper, json_t *saved, struct zygote_events events,
                              char *err, size_t err_size);

#endif
