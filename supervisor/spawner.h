/* spawner.h - how a worker process comes to be: the seam between the pool and exec or fork.
 *
 * The pool asks a spawner for a worker and otherwise treats every worker alike: the channel,
 * heartbeats, the drain, deadlines and the exit (delivered by the reaper) are the same whether the
 * worker is a fresh interpreter (exec) or a fork of a zygote that imported the app once (fork
 * server, --preload). A fake spawner in the unit tests drives the pool without processes. */
#ifndef ARBITER_SPAWNER_H
#define ARBITER_SPAWNER_H

#include <stdbool.h>
#include <stddef.h>

#include "launch.h"

#include <uv.h>

struct config;
struct reaper;
struct spawner;
struct worker;
struct worker_launch;

/* How a spawner tells the pool what happened: it calls nothing above it. */
struct spawner_events {
    void (*changed)(void *data);                           /* its own process (a zygote) came or went */
    void (*reload_failed)(const char *reason, void *data); /* the new code cannot be loaded: the reload fails */
    void *data;
};

/* What a spawner is given instead of the pool; the pool owns it and outlives the spawner's work. */
struct spawner_env {
    uv_loop_t *loop;
    const struct config *config;
    struct reaper *reaper;
    const unsigned *generation; /* the pool's current generation: a restarted zygote imports it */
    struct launch_context launch; /* what the zygote's command line, its environment and a fork request's "env" are built from (launch.h) */
    struct spawner_events events;
};

struct spawner_ops {
    const char *name;
    /* The pool is starting: e.g. the zygote begins importing the app. */
    int (*start)(struct spawner *spawner, char *err, size_t err_size);
    /* Creates the process for w (env, slot and generation set). Returns 0 with w SPAWNING or
     * BOOTING, its channel open; or -1 with err set, w's handles closing (worker_close) or never
     * opened. A fork that fails later ends in worker_spawn_failed(). */
    int (*spawn)(struct spawner *spawner, struct worker *w, const struct worker_launch *launch, char *err,
                 size_t err_size);
    /* A reload to `generation` began: new code must be loaded for the workers spawned from now on. */
    void (*reload)(struct spawner *spawner, unsigned generation);
    /* The pool is stopping: processes of the spawner's own (zygotes) go. */
    void (*stop)(struct spawner *spawner);
    /* Processes of the spawner's own still running; the pool is empty only when this is 0 too. */
    unsigned (*live)(const struct spawner *spawner);
    /* Closes its handles; the pool is empty. */
    void (*close)(struct spawner *spawner);
};

struct spawner {
    const struct spawner_ops *ops;
    const struct spawner_env *env; /* the pool's, set by pool_init (the exec spawner needs none) */
};

/* The default: each worker is `PYTHON -m arbiter_worker ...`, spawned with uv_spawn. */
extern const struct spawner_ops spawner_exec_ops;

#endif
