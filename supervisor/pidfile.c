/* pidfile.c - gunicorn's --pid FILE: the arbiter's pid, for scripts that signal it by file.
 *
 * Written whole (a temporary file renamed over FILE), so a reader never sees half a number. A FILE
 * that names another live process is refused: two arbiters sharing one pidfile would signal each
 * other's workers. A FILE holding our own pid is ours: after `ctl upgrade` the new image has the
 * same pid and writes it again. Removed at exit only while it still holds our pid. */
#define _GNU_SOURCE
#include "pidfile.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long pidfile_read(const char *path) {
    FILE *file = fopen(path, "re");
    if (!file)
        return 0;
    long pid = 0;
    if (fscanf(file, "%ld", &pid) != 1)
        pid = 0;
    fclose(file);
    return pid;
}

int pidfile_write(const char *path, char *err, size_t err_size) {
    long owner = pidfile_read(path);
    if (owner > 0 && owner != (long)getpid() && (kill((pid_t)owner, 0) == 0 || errno == EPERM)) {
        snprintf(err, err_size, "--pid %s: process %ld is running and owns this pidfile; stop it or pass another --pid",
                 path, owner);
        return -1;
    }
    char temporary[4096];
    if (snprintf(temporary, sizeof temporary, "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof temporary) {
        snprintf(err, err_size, "--pid %s: path too long", path);
        return -1;
    }
    FILE *file = fopen(temporary, "we");
    if (!file) {
        snprintf(err, err_size, "--pid %s: cannot create %s: %s; check that the directory exists and is writable",
                 path, temporary, strerror(errno));
        return -1;
    }
    int written = fprintf(file, "%ld\n", (long)getpid());
    if (fclose(file) != 0 || written < 0 || rename(temporary, path) != 0) {
        snprintf(err, err_size, "--pid %s: cannot write it: %s", path, strerror(errno));
        unlink(temporary);
        return -1;
    }
    return 0;
}

void pidfile_remove(const char *path) {
    if (pidfile_read(path) == (long)getpid() && unlink(path) != 0)
        fprintf(stderr, "arbiter: --pid %s: cannot remove it: %s\n", path, strerror(errno));
}
