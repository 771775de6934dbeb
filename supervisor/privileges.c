/* privileges.c - a worker becomes --user/--group before any of its code runs.
 *
 * libuv can set a child's uid and gid, but it clears the supplementary groups (setgroups(0, NULL))
 * instead of giving the user's own (initgroups), and leaves HOME and USER as root's. So with --user
 * or --group the arbiter spawns itself, /proc/self/exe (the very binary that runs, whatever happened
 * to the file since), as `arbiter exec-worker PYTHON ARGS...` with the target in ARBITER_UID,
 * ARBITER_GID and ARBITER_USER. This file is that subcommand: it sets the groups, the gid, then the
 * uid (in that order: after setuid it could not set groups any more), proves root cannot be
 * regained, sets HOME, USER and LOGNAME from the user's passwd entry, checks that the working
 * directory (--chdir) is usable by the new user, and execs PYTHON. So no Python code runs as root,
 * not even the interpreter's start-up (site-packages and their .pth files). Both ways a worker comes
 * to be go through this door: an exec'd worker, and the zygote under --preload, whose forks inherit
 * the identity it was given here. */
#define _GNU_SOURCE
#include "privileges.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "environment.h"

enum { EXIT_STARTED_WRONGLY = 2, EXIT_UNUSABLE_INTERPRETER = 4 }; /* the shim's codes */

static int parse_id(const char *name, const char *text, unsigned *out, char *err, size_t err_size) {
    char *end;
    errno = 0;
    unsigned long value = strtoul(text, &end, 10);
    if (errno || !*text || *end || text[0] < '0' || text[0] > '9' || value >= (unsigned long)UINT_MAX) {
        snprintf(err, err_size, "%s='%s' is not a numeric id", name, text);
        return -1;
    }
    *out = (unsigned)value;
    return 0;
}

int privileges_parse(char *const *env, struct privileges *out, char *err, size_t err_size) {
    memset(out, 0, sizeof *out);
    const char *uid = environment_get(env, "ARBITER_UID");
    const char *gid = environment_get(env, "ARBITER_GID");
    const char *user = environment_get(env, "ARBITER_USER");
    unsigned value;
    if (uid && *uid) {
        if (parse_id("ARBITER_UID", uid, &value, err, err_size) != 0)
            return -1;
        out->set_uid = true;
        out->uid = (uid_t)value;
    }
    if (gid && *gid) {
        if (parse_id("ARBITER_GID", gid, &value, err, err_size) != 0)
            return -1;
        out->set_gid = true;
        out->gid = (gid_t)value;
    }
    if (!out->set_gid) {
        snprintf(err, err_size, "ARBITER_GID is not set: nothing to become");
        return -1;
    }
    out->user = user && *user ? user : NULL;
    if (out->user && !out->set_uid) {
        snprintf(err, err_size, "ARBITER_USER=%s comes without ARBITER_UID", out->user);
        return -1;
    }
    return 0;
}

static int drop(const struct privileges *p, char *err, size_t err_size) {
    if (p->user ? initgroups(p->user, p->gid) != 0 : setgroups(1, &p->gid) != 0) {
        snprintf(err, err_size, "cannot set the supplementary groups%s%s: %s (the arbiter must run as root for "
                 "--user/--group)", p->user ? " of " : "", p->user ? p->user : "", strerror(errno));
        return -1;
    }
    if (setresgid(p->gid, p->gid, p->gid) != 0) {
        snprintf(err, err_size, "cannot set gid %u: %s", (unsigned)p->gid, strerror(errno));
        return -1;
    }
    if (p->set_uid && setresuid(p->uid, p->uid, p->uid) != 0) {
        snprintf(err, err_size, "cannot set uid %u: %s", (unsigned)p->uid, strerror(errno));
        return -1;
    }
    if (getgid() != p->gid || getegid() != p->gid || (p->set_uid && (getuid() != p->uid || geteuid() != p->uid))) {
        snprintf(err, err_size, "the ids did not change to uid %u, gid %u", (unsigned)p->uid, (unsigned)p->gid);
        return -1;
    }
    if (p->set_uid && p->uid != 0 && setuid(0) == 0) {
        snprintf(err, err_size, "root could be regained after dropping to uid %u", (unsigned)p->uid);
        return -1;
    }
    return 0;
}

/* The user's own HOME, USER and LOGNAME, as login(1) would set them. */
static int set_user_environment(const struct privileges *p, char *err, size_t err_size) {
    if (!p->user)
        return 0;
    struct passwd *pw = getpwnam(p->user);
    if (!pw) {
        snprintf(err, err_size, "user %s has no passwd entry any more", p->user);
        return -1;
    }
    if (setenv("HOME", pw->pw_dir, 1) != 0 || setenv("USER", pw->pw_name, 1) != 0 ||
        setenv("LOGNAME", pw->pw_name, 1) != 0) {
        snprintf(err, err_size, "setenv: %s", strerror(errno));
        return -1;
    }
    return 0;
}

int privileges_exec_worker(int argc, char **argv) {
    char err[512];
    struct privileges p;
    if (argc < 2) {
        fprintf(stderr, "arbiter %s: usage: arbiter %s PYTHON [ARGS...] (run by the arbiter itself, for --user/--group)\n",
                PRIVILEGES_EXEC_COMMAND, PRIVILEGES_EXEC_COMMAND);
        return EXIT_STARTED_WRONGLY;
    }
    extern char **environ;
    if (privileges_parse(environ, &p, err, sizeof err) != 0 || drop(&p, err, sizeof err) != 0 ||
        set_user_environment(&p, err, sizeof err) != 0) {
        fprintf(stderr, "arbiter %s: %s\n", PRIVILEGES_EXEC_COMMAND, err);
        return EXIT_STARTED_WRONGLY;
    }
    /* By its full path, as Python puts it on sys.path: every directory above must be searchable too. */
    char cwd[PATH_MAX];
    bool known = getcwd(cwd, sizeof cwd) != NULL;
    if (!known || access(cwd, R_OK | X_OK) != 0) {
        fprintf(stderr, "arbiter %s: the working directory %s is not usable by uid %u, gid %u (%s); make --chdir and "
                "the directories above it readable and searchable by --user/--group\n", PRIVILEGES_EXEC_COMMAND,
                known ? cwd : "(deleted?)", (unsigned)getuid(), (unsigned)getgid(), strerror(errno));
        return EXIT_STARTED_WRONGLY;
    }
    execvp(argv[1], argv + 1);
    fprintf(stderr, "arbiter %s: cannot run %s as uid %u: %s; pass --python an interpreter --user may execute\n",
            PRIVILEGES_EXEC_COMMAND, argv[1], (unsigned)getuid(), strerror(errno));
    return EXIT_UNUSABLE_INTERPRETER;
}
