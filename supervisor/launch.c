/* launch.c - a worker's and the zygote's command line and environment (see launch.h).
 *
 * Moved out of pool.c so that the recipe depends on the configuration and the arbiter's identity
 * only. The jittered --max-requests is computed here once as an unsigned; argv carries its decimal
 * form and the caller keeps the number, instead of parsing argv back. */
#include "launch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "environment.h"
#include "log.h"
#include "privileges.h"

extern char **environ;

unsigned launch_max_requests(const struct config *c) {
    if (!c->max_requests)
        return 0;
    unsigned jitter = c->max_requests_jitter ? (unsigned)random() % (c->max_requests_jitter + 1) : 0;
    return c->max_requests + jitter;
}

double launch_heartbeat_interval(const struct config *config) {
    if (config->timeout <= 0)
        return 5.0;
    double interval = config->timeout / 4;
    return interval < 0.05 ? 0.05 : interval > 5.0 ? 5.0 : interval;
}

char **launch_argv(const struct launch_context *ctx, struct launch_numbers *numbers, bool zygote,
                   unsigned max_requests) {
    const struct config *c = ctx->config;
    char **argv = calloc(c->forward.count + 18, sizeof *argv);
    if (!argv)
        return NULL;
    size_t n = 0;
    if (ctx->set_uid || ctx->set_gid) { /* privileges.c: become --user/--group, then exec PYTHON */
        argv[n++] = "/proc/self/exe";
        argv[n++] = PRIVILEGES_EXEC_COMMAND;
    }
    argv[n++] = c->python;
    argv[n++] = "-m";
    argv[n++] = "arbiter_worker";
    if (zygote)
        argv[n++] = "--zygote";
    for (size_t i = 0; i < c->forward.count; i++)
        argv[n++] = c->forward.items[i];
    argv[n++] = "--log-level";
    argv[n++] = (char *)log_level_name(c->log_level);
    argv[n++] = c->access_log ? "--access-log" : "--no-access-log";
    snprintf(numbers->graceful_timeout, sizeof numbers->graceful_timeout, "%g", c->graceful_timeout);
    argv[n++] = "--graceful-timeout";
    argv[n++] = numbers->graceful_timeout;
    if (max_requests && !zygote) {
        snprintf(numbers->max_requests, sizeof numbers->max_requests, "%u", max_requests);
        argv[n++] = "--max-requests";
        argv[n++] = numbers->max_requests;
    }
    if (c->factory)
        argv[n++] = "--factory";
    argv[n++] = c->app;
    argv[n] = NULL;
    return argv;
}

/* What environment.c needs to know about this worker (or, with worker_id 0, the zygote). */
static struct worker_identity launch_identity(const struct launch_context *ctx, unsigned worker_id, unsigned generation,
                                              size_t listen_fds, unsigned board_index) {
    const struct config *c = ctx->config;
    return (struct worker_identity){
        .worker_id = worker_id,
        .generation = generation,
        .arbiter_pid = (int)getpid(),
        .listen_fds = listen_fds,
        .heartbeat_interval = launch_heartbeat_interval(c),
        .log_format = c->log_format == LOG_FORMAT_JSON ? "json" : "text",
        .log_file = c->log_file,
        .shim_dir = ctx->shim_dir,
        .balance = balance_mode_name(c->balance),
        .board_index = board_index,
        .set_uid = ctx->set_uid,
        .set_gid = ctx->set_gid,
        .uid = ctx->uid,
        .gid = ctx->gid,
        .user = ctx->set_uid ? c->user : NULL,
    };
}

char **launch_env(const struct launch_context *ctx, unsigned worker_id, unsigned generation, size_t listen_fds,
                  unsigned board_index) {
    struct worker_identity identity = launch_identity(ctx, worker_id, generation, listen_fds, board_index);
    return environment_build(environ, ctx->config->env.items, ctx->config->env.count, &identity);
}

char **launch_variables(const struct launch_context *ctx, unsigned worker_id, unsigned generation, size_t listen_fds,
                        unsigned board_index) {
    struct worker_identity identity = launch_identity(ctx, worker_id, generation, listen_fds, board_index);
    char **env = environment_build(NULL, NULL, 0, &identity);
    size_t kept = 0;
    for (size_t i = 0; env && env[i]; i++) {
        if (strncmp(env[i], "ARBITER_", 8) == 0)
            env[kept++] = env[i];
        else
            free(env[i]); /* PYTHONPATH, PYTHONUNBUFFERED: the zygote's own */
    }
    if (env)
        env[kept] = NULL;
    return env;
}
