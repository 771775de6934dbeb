/* pool.h - the set of worker slots: target count, restarts, rolling replacement, stop. */
#ifndef ARBITER_POOL_H
#define ARBITER_POOL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "backoff.h"
#include "board.h"
#include "config.h"
#include "launch.h"
#include "leftovers.h"
#include "listener.h"
#include "reaper.h"
#include "reload.h"
#include "spawner.h"
#include "worker.h"

/* Why workers exited, for metrics. */
enum exit_reason {
    EXIT_REASON_STOPPED,           /* exit 0 after being told to stop */
    EXIT_REASON_ERROR,             /* non-zero exit code */
    EXIT_REASON_SIGNAL,            /* killed by a signal the arbiter did not send */
    EXIT_REASON_HEARTBEAT_TIMEOUT, /* killed: missed heartbeats */
    EXIT_REASON_BOOT_TIMEOUT,      /* killed: not ready in time */
    EXIT_REASON_GRACEFUL_TIMEOUT,  /* killed: drain took too long */
    EXIT_REASON_SPAWN_FAILED,      /* never ran: exec failed, or no fork from the zygote */
    EXIT_REASON_COUNT
};
const char *exit_reason_name(enum exit_reason reason);

/* What a slot shows in status when it has no running worker. */
enum slot_state { SLOT_RUNNING, SLOT_BACKOFF, SLOT_CRASHLOOP };

/* A slot is a place for one worker, numbered 1..N; its id survives restarts of its worker. */
struct slot {
    struct pool *pool;
    unsigned id;
    struct worker *active;    /* booting or ready */
    struct worker *successor; /* an overlapped replacement, booting while active serves */
    bool replace_pending;     /* reload or recycle wants this slot's worker replaced */
    enum slot_state state;
    struct backoff backoff;
    uint64_t restarts;
    char last_exit[96];
    bool spawn_failed;      /* the last start failed before a process existed */
    char spawn_error[160];  /* why */
    uv_timer_t restart_timer;
    /* --reuse-port: this slot's own listeners (owned[i]: opened for this slot, closed with it). */
    int listen_fds[LISTENER_MAX];
    bool owned[LISTENER_MAX];
};

struct pool;

/* How the pool tells its owner about changes. */
struct pool_events {
    void (*changed)(struct pool *pool);                /* a worker became ready, exited, ... */
    void (*empty)(struct pool *pool);                  /* stopping, and the last worker exited */
    void (*boot_failed)(struct pool *pool, int exit_code); /* no worker ever became ready */
    void (*reload_finished)(struct pool *pool);        /* pool->reload is done or failed (NULL: not told; the core reads pool->reload on `changed`) */
    void *data;
};

struct pool {
    uv_loop_t *loop;
    const struct config *config;
    struct pool_events events;
    const int *listen_fds;
    size_t listen_fd_count;
    const char *shim_dir;
    bool set_uid, set_gid;
    uv_uid_t uid;
    uv_gid_t gid;

    struct spawner *spawner; /* exec, or the fork server (--preload) */
    struct reaper *reaper;   /* delivers the exits of forked workers; NULL in unit tests */
    struct leftovers *leftovers; /* ends what an exited worker left in its group; NULL in unit tests */
    struct board *board;     /* one entry per live worker; NULL: workers run without one */
    struct reload reload;
    struct worker_env worker_env;   /* what its workers share, their events coming back here */
    struct spawner_env spawner_env; /* what its spawner works with (spawner->env), its events coming back here */

    struct slot **slots; /* slots[0..slot_count) ordered by id */
    size_t slot_count;
    unsigned target;
    unsigned generation;
    bool ever_ready;
    bool stopping;
    bool emptied; /* events.empty has fired */
    bool graceful_stop;
    struct worker *draining; /* workers told to stop that no longer belong to a slot (replaced, scaled down) */
    uint64_t spawned_total;
    uint64_t restarts_total;
    uint64_t replace_failures; /* replacements that exited before ready */
    uint64_t exits[EXIT_REASON_COUNT];
    uint64_t requests_of_exited; /* requests served by workers that are gone */
};

/* Who the workers run as: --user/--group, resolved (set_*: false keeps the arbiter's own). */
struct pool_identity {
    bool set_uid, set_gid;
    uv_uid_t uid;
    uv_gid_t gid;
};

/* Everything a pool is built with; pool_init copies it (the pointers must outlive the pool). */
struct pool_deps {
    const int *listen_fds; /* the arbiter's listeners, passed to every worker */
    size_t listen_fd_count;
    const char *shim_dir;  /* prepended to the workers' PYTHONPATH; NULL: installed in the venv */
    struct pool_identity identity;
    struct spawner *spawner;     /* exec, or the fork server (--preload); its env becomes the pool's */
    struct reaper *reaper;       /* delivers the workers' exits; NULL in unit tests without processes */
    struct leftovers *leftovers; /* ends what an exited worker left in its group; NULL: none */
    struct board *board;         /* one entry per live worker; NULL: workers run without one */
    struct pool_events events;
};

int pool_init(struct pool *pool, uv_loop_t *loop, const struct config *config, const struct pool_deps *deps);

/* Starts the spawner, creates the target number of slots and starts their workers. */
int pool_start(struct pool *pool, char *err, size_t err_size);

/* Changes the target; new slots start at once, removed slots drain. */
int pool_scale(struct pool *pool, unsigned target);

/* Replaces every worker, --max-surge at a time, each new one ready before the old one drains
 * (reload.h says how far it got). */
void pool_reload(struct pool *pool);

/* How many overlapped replacements may boot at once: --max-surge, else 25% of the target, >= 1. */
unsigned pool_surge(const struct pool *pool);

/* Forgets every planned replacement and stops the successors still booting. */
void pool_cancel_replacements(struct pool *pool);


/* Replaces one slot's worker (overlapped). Returns -1 when there is no such slot. */
int pool_recycle(struct pool *pool, unsigned slot_id);

/* Stops every worker; events.empty fires when the last one has exited. */
void pool_stop(struct pool *pool, bool graceful);

/* Closes the arbiter's copies of the slots' own listeners (--reuse-port), at the end of a lame duck. */
void pool_close_listeners(struct pool *pool);

/* The one walk over the live workers: each slot's active worker with its slot (worker NULL for a slot
 * without one, in backoff or crashloop, when with_empty_slots), its successor (slot NULL), then the
 * draining workers (slot NULL), in that order. */
typedef void pool_visit_fn(struct worker *worker, const struct slot *slot, void *data);
void pool_walk(struct pool *pool, bool with_empty_slots, pool_visit_fn *visit, void *data);

/* Closes the slots' handles; call once the pool is empty. */
void pool_close(struct pool *pool);

unsigned pool_ready_count(const struct pool *pool);
unsigned pool_live_count(const struct pool *pool);
/* Workers whose process is still being created (a fork requested from the zygote). */
unsigned pool_spawning_count(const struct pool *pool);
struct slot *pool_find_slot(const struct pool *pool, unsigned slot_id);
const char *slot_state_name(const struct slot *slot);

/* The launch recipe's view of this pool (launch.h): configuration, shim dir, --user/--group. */
struct launch_context pool_launch_context(const struct pool *pool);

/* In-place upgrade: the whole pool as JSON (fds under keys ending in _fd/_fds), and its adoption by
 * the next image (after pool_init, instead of pool_start). */
json_t *pool_save(const struct pool *pool);
int pool_restore(struct pool *pool, json_t *saved, char *err, size_t err_size);

#endif
