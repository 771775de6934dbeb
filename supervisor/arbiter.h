/* arbiter.h - the daemon's state: the one place to look for what a running arbiter knows. */
#ifndef ARBITER_ARBITER_H
#define ARBITER_ARBITER_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "autoscale.h"
#include "board.h"
#include "config.h"
#include "control.h"
#include "leftovers.h"
#include "listener.h"
#include "metrics.h"
#include "notify.h"
#include "pool.h"
#include "reaper.h"
#include "spawner.h"
#include "stall.h"
#include "upgrade.h"
#include "version.h"
#include "zygote.h"


/* A reload is not a state of its own here: pool.reload knows (arbiter_state_name shows it). */
enum arbiter_state { ARBITER_STARTING, ARBITER_RUNNING, ARBITER_STOPPING };

/* Exit codes (public interface). */
enum {
    EXIT_CLEAN = 0,
    EXIT_RUNTIME_FAILURE = 1,
    EXIT_USAGE = 2,
    EXIT_BOOT_FAILURE = 3,
};

#define ARBITER_SIGNAL_COUNT 8

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

    struct listener_set listeners;
    int listen_fds[LISTENER_MAX];
    size_t stored_listeners; /* listeners taken back from systemd's fd store at start */
    struct pool pool;
    struct reaper reaper;
    struct spawner exec_spawner;
    struct fork_server fork_server;
    struct notify notify;
    struct upgrade upgrade;
    struct control control;
    struct metrics metrics;
    struct board board;         /* the workers' shared gauges (board.h) */
    struct autoscale autoscale; /* --autoscale, `ctl autoscale` */
    struct leftovers leftovers; /* a worker's group after it exited; adopted processes at stop */
    struct stall stall;         /* the loop's own lateness: a stall re-arms the liveness deadlines */
    uv_signal_t signals[ARBITER_SIGNAL_COUNT];
    size_t signal_count;
    char shim_dir[PATH_MAX];
};

/* "starting", "running", "reloading" or "stopping": what status and logs show. */
const char *arbiter_state_name(const struct arbiter *arbiter);

/* The directory holding the worker shim (arbiter_worker), or "" when it is installed in the venv. */
void arbiter_find_shim_dir(char *out, size_t size);

/* Runs `arbiter run` or `arbiter check` until the daemon stops; returns the exit code. */
int arbiter_run(struct config *config);

void arbiter_stop(struct arbiter *arbiter, bool graceful, const char *why);
void arbiter_reload(struct arbiter *arbiter, const char *why);
/* A scale by hand (ctl scale, TTIN/TTOU): turns autoscaling off, with a log line saying so. */
int arbiter_scale(struct arbiter *arbiter, unsigned target, const char *why);

/* In-place upgrade: everything the next image adopts (upgrade.c hands it over). */
json_t *arbiter_save_state(const struct arbiter *arbiter, const struct upgrade *upgrade);

/* signals.c */
int signals_start(struct arbiter *arbiter);
void signals_close(struct arbiter *arbiter);

#endif
