/* daemon.h - the composition root (daemon.c): the core and its front doors, built and wired. */
#ifndef ARBITER_DAEMON_H
#define ARBITER_DAEMON_H

#include "arbiter.h"
#include "config.h"
#include "control.h"
#include "metrics.h"
#include "signals.h"

/* One running arbiter: the core, and the front doors that observe it and ask it for actions. */
struct daemon {
    struct arbiter arbiter;
    struct control control;
    struct metrics metrics;
    struct signals signals;
};

/* Runs `arbiter run` or `arbiter check` until the daemon stops; returns the exit code. */
int daemon_run(struct config *config);

#endif
