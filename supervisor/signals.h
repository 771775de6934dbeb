/* signals.h - the arbiter's signals (a front door, like the control socket): signals.c. */
#ifndef ARBITER_SIGNALS_H
#define ARBITER_SIGNALS_H

#include <stddef.h>
#include <uv.h>

#define SIGNALS_COUNT 8

struct arbiter;

struct signals {
    struct arbiter *arbiter;
    uv_signal_t handles[SIGNALS_COUNT];
    size_t count; /* handles initialised, closed by signals_close */
};

/* Ignores SIGPIPE and handles every signal of signals.c's table on the loop. -1 (logged) when one
 * cannot be handled; signals_close must still be called. */
int signals_start(struct signals *signals, struct arbiter *arbiter);
void signals_close(struct signals *signals);

#endif
