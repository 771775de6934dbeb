/* launch.h - the recipe for a worker's or the zygote's process: its command line and environment.
 *
 * Built from the configuration and the arbiter's identity only (no pool): the pool and the zygote
 * describe themselves with a struct launch_context and get argv and env back. Numbers stay numbers:
 * a worker's --max-requests (jitter included) is drawn once, by launch_max_requests(), and the same
 * value is both formatted into argv and handed to the spawner. */
#ifndef ARBITER_LAUNCH_H
#define ARBITER_LAUNCH_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* What launch.c needs to know about the arbiter besides its configuration. */
struct launch_context {
    const struct config *config;
    const char *shim_dir;
    bool set_uid, set_gid; /* --user/--group: exec through /proc/self/exe exec-worker */
    unsigned uid, gid;
};

/* Room for the numbers launch_argv() formats; lives as long as the argv. */
struct launch_numbers {
    char graceful_timeout[32];
    char max_requests[32];
};

/* This worker's --max-requests: max_requests plus a random() draw in [0, jitter]; 0 when unset. */
unsigned launch_max_requests(const struct config *config);

/* The shim's heartbeat interval: a quarter of --timeout, within [0.05, 5] s (5 s without a timeout). */
double launch_heartbeat_interval(const struct config *config);

/* [/proc/self/exe exec-worker] PYTHON -m arbiter_worker [--zygote] [uvicorn options]
 * [--max-requests N] APP; max_requests is ignored for the zygote. NULL when memory runs out. */
char **launch_argv(const struct launch_context *ctx, struct launch_numbers *numbers, bool zygote,
                   unsigned max_requests);

/* The arbiter's environment, cleaned, plus --env and the ARBITER_* variables (environment.c).
 * NULL when memory runs out; free with environment_free(). */
char **launch_env(const struct launch_context *ctx, unsigned worker_id, unsigned generation, size_t listen_fds,
                  unsigned board_index);

/* The ARBITER_* variables alone of what launch_env() builds: what a worker forked by the zygote
 * carries in its fork request's "env" (the zygote then sets the fd numbers only it knows). NULL when
 * memory runs out; free with environment_free(). */
char **launch_variables(const struct launch_context *ctx, unsigned worker_id, unsigned generation, size_t listen_fds,
                        unsigned board_index);

#endif
