/* environment.h - the environment a worker process starts with. */
#ifndef ARBITER_ENVIRONMENT_H
#define ARBITER_ENVIRONMENT_H

#include <stdbool.h>
#include <stddef.h>

/* What only the arbiter knows about one worker. */
struct worker_identity {
    unsigned worker_id;
    unsigned generation;
    int arbiter_pid;
    size_t listen_fds;
    double heartbeat_interval;
    const char *log_format;
    const char *log_file; /* NULL: logs go to the inherited stderr */
    const char *shim_dir; /* prepended to PYTHONPATH; NULL when the shim is installed in the venv */
    const char *balance;  /* ARBITER_BALANCE: even or kernel (--balance); NULL: not set */
    unsigned board_index; /* its board entry (ARBITER_BOARD_INDEX, board fd after the channel); 0: none */
    /* --user/--group, for `arbiter exec-worker` (privileges.c): ARBITER_UID, ARBITER_GID, ARBITER_USER */
    bool set_uid, set_gid;
    unsigned uid, gid;
    const char *user;
};

/* Builds a NULL-terminated environment: base (the arbiter's own) minus the variables that belong to
 * the arbiter alone (NOTIFY_SOCKET, WATCHDOG_*, LISTEN_*, ARBITER_*), plus the extra_count KEY=VALUE
 * entries of extra (--env, --env-file, later entries win; NULL when none), plus ARBITER_* for this worker. Returns NULL when memory runs out.
 * Free with environment_free. */
char **environment_build(char *const *base, char *const *extra, size_t extra_count,
                         const struct worker_identity *identity);
void environment_free(char **env);

/* Looks NAME up in a NULL-terminated environment. */
const char *environment_get(char *const *env, const char *name);

#endif
