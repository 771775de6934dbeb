/* arbiter.h - the daemon's core: its state, and the actions every front door may ask for.
 *
 * The core is what runs the workers: the pool and its spawner, the reaper, the board, the
 * listeners, systemd's notify socket, the autoscaler, the upgrade, the stall watch. The front doors
 * (control socket, /metrics, signals: daemon.h) sit above it: they call the actions below and read
 * the census (status.h); the core never calls them back, it tells its one observer instead. */
#ifndef ARBITER_ARBITER_H
#define ARBITER_ARBITER_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "autoscale.h"
#include "board.h"
#include "config.h"
#include "exits.h"
#include "leftovers.h"
#include "listener.h"
#include "notify.h"
#include "pool.h"
#include "reaper.h"
#include "spawner.h"
#include "stall.h"
#include "status.h"
#include "upgrade.h"
#include "fork_server.h"

/* What the core tells its observer (the composition root, which passes it on to the front doors). */
enum arbiter_event {
    ARBITER_CHANGED,  /* workers, a reload, a stop or an upgrade moved on: waiting commands re-check */
    ARBITER_FINISHED, /* stopped: the workers and what they left are gone; close everything */
};

struct arbiter;

struct arbiter_observer {
    void (*notify)(struct arbiter *arbiter, enum arbiter_event event);
    void *data;
};

struct arbiter {
    uv_loop_t *loop;
    struct config *config;
    enum arbiter_state state;
    int exit_code;
    bool check_mode;     /* `arbiter check`: stop as soon as the worker is ready */
    uint64_t started_ms;
    bool lame_duck;        /* stopping, listeners still accepting until lame_duck_timer fires */
    uv_timer_t lame_duck_timer;
    char status_line[128]; /* last STATUS= sent to systemd */
    uint64_t reload_notified; /* pool.reload.id whose end systemd has heard of (READY=1) */
    struct arbiter_observer observer;

    struct listener_set listeners;
    int listen_fds[LISTENER_MAX];
    size_t stored_listeners; /* listeners taken back from systemd's fd store at start */
    struct pool pool;
    struct reaper reaper;
    struct spawner exec_spawner;
    struct fork_server fork_server;
    struct notify notify;
    struct upgrade upgrade;
    struct board board;         /* the workers' shared gauges (board.h) */
    struct autoscale autoscale; /* --autoscale, `ctl autoscale` */
    struct leftovers leftovers; /* a worker's group after it exited; adopted processes at stop */
    struct stall stall;         /* the loop's own lateness: a stall re-arms the liveness deadlines */
    struct status_sources sources; /* what the census reads (status.h) */
    char shim_dir[PATH_MAX];
};

/* "starting", "running", "reloading" or "stopping": what status and logs show. */
const char *arbiter_state_name(const struct arbiter *arbiter);

/* Sets up the core's own handles (lame-duck timer, stall watch, leftovers, notify) and the census
 * sources; the composition root then builds the pool, the spawners and the front doors. */
void arbiter_init(struct arbiter *arbiter, uv_loop_t *loop, struct config *config, struct arbiter_observer observer);

/* The pool's events, handled by the core (ready, a reload's end, empty after a stop, boot failed). */
struct pool_events arbiter_pool_events(struct arbiter *arbiter);

/* Why an in-place upgrade cannot start now (stopping, starting, a reload, workers starting, the
 * zygote busy), or NULL. */
const char *arbiter_upgrade_busy(const struct arbiter *arbiter);

/* The next image is running on the adopted workers: READY=1 to systemd and the log line. */
void arbiter_adopted(struct arbiter *arbiter);

/* Tells the observer that something changed (waiting control commands re-check). */
void arbiter_changed(struct arbiter *arbiter);

void arbiter_stop(struct arbiter *arbiter, bool graceful, const char *why);
void arbiter_reload(struct arbiter *arbiter, const char *why);
/* A scale by hand (ctl scale, TTIN/TTOU): turns autoscaling off, with a log line saying so. */
int arbiter_scale(struct arbiter *arbiter, unsigned target, const char *why);

/* Closes the core's handles, each through its owner's close function (once the pool is empty). */
void arbiter_close(struct arbiter *arbiter);

#endif
