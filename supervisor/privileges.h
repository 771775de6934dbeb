/* privileges.h - `arbiter exec-worker`: a worker becomes --user/--group before its interpreter runs. */
#ifndef ARBITER_PRIVILEGES_H
#define ARBITER_PRIVILEGES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The hidden subcommand the arbiter spawns (as /proc/self/exe) in front of PYTHON when --user or
 * --group is given: `arbiter exec-worker PYTHON ARGS...`. */
#define PRIVILEGES_EXEC_COMMAND "exec-worker"

/* Who a worker becomes, as the arbiter passes it in ARBITER_UID, ARBITER_GID and ARBITER_USER. */
struct privileges {
    bool set_uid, set_gid;
    uid_t uid;
    gid_t gid;
    const char *user; /* --user's name (its supplementary groups come from it); NULL with --group alone */
};

/* Reads ARBITER_UID, ARBITER_GID and ARBITER_USER from env. Returns 0, or -1 with err set when a
 * value is malformed or none is given (exec-worker has nothing to do then: a bug in the caller). */
int privileges_parse(char *const *env, struct privileges *out, char *err, size_t err_size);

/* `arbiter exec-worker PYTHON ARGS...` (argv[0] is "exec-worker"): sets the groups (initgroups for
 * --user, just --group's otherwise), the gid, the uid, HOME/USER/LOGNAME, checks the working
 * directory is usable, then execs PYTHON. Returns only on failure, with the shim's exit code
 * (docs/worker-channel.md): 2 when the drop failed, 4 when PYTHON cannot be executed. */
int privileges_exec_worker(int argc, char **argv);

#endif
