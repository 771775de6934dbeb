/* reaper.h - the arbiter as a subreaper: every child is reaped here, whoever started it. */
#ifndef ARBITER_REAPER_H
#define ARBITER_REAPER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define REAPER_RECENT_MAX 64

struct reaper_entry;

/* Called once, after the process has been reaped. The entry is no longer watched. */
typedef void (*reaper_exit_fn)(struct reaper_entry *entry, int64_t exit_status, int term_signal);

/* Embedded in whatever owns a process (a worker, a zygote); container_of gets the owner back. */
struct reaper_entry {
    int pid;
    reaper_exit_fn exited;
    struct reaper_entry *next;
};

struct reaper {
    uv_loop_t *loop;
    uv_signal_t sigchld;
    bool started;
    struct reaper_entry *watched;
    /* Children reaped before anyone asked for them: a zygote's grandchild can exit before the
     * zygote has told us its pid. Kept so a late reaper_watch still learns how it ended. */
    struct {
        int pid;
        int status;
    } recent[REAPER_RECENT_MAX];
    size_t recent_next;
    uint64_t orphans_reaped; /* children nobody watched: the app's orphans, in a container */
};

/* Becomes a subreaper (PR_SET_CHILD_SUBREAPER) and handles SIGCHLD on the loop; reaps at once what
 * already exited. The struct starts zeroed; watches may be added before (adoption after an upgrade). */
int reaper_start(struct reaper *reaper, uv_loop_t *loop, char *err, size_t err_size);

/* Watches entry->pid (a child, or a grandchild re-parented to us). Returns true when that pid was
 * already reaped as an unknown child: *exit_status and *term_signal then say how it ended and the
 * entry is not watched. */
bool reaper_watch(struct reaper *reaper, struct reaper_entry *entry, int64_t *exit_status, int *term_signal);

/* Stops watching (someone else reaped it: libuv for a process it spawned). Safe if not watched. */
void reaper_unwatch(struct reaper *reaper, struct reaper_entry *entry);

/* Reaps every child that has exited (also called on SIGCHLD). */
void reaper_collect(struct reaper *reaper);

/* Splits a wait status into libuv's (exit_status, term_signal) pair. */
void reaper_decode_status(int status, int64_t *exit_status, int *term_signal);

void reaper_close(struct reaper *reaper);

#endif
