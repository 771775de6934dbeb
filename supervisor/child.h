/* child.h - one child process of the arbiter: a worker, a zygote or the upgrade's pre-flight.
 *
 * What every child has in common lives here once: its spawn (uv_spawn with its stdio: the logged
 * output pipe of child_output.h or an fd of the owner's, then the owner's fds from 3 on, the
 * channel's other end among them), the channel (our end of a socketpair, read as lines through
 * line_buffer.h), the reaper entry, and the exit, delivered exactly once through ops->exited.
 *
 * The reaper is the only exit path. libuv reaps the processes it spawned in its own SIGCHLD
 * handler, racing ours (its comment calls the ECHILD case a tolerated race): so the uv_process_t is
 * closed right after uv_spawn returns, before the loop runs again, and libuv never waits for the
 * pid. The reaper's waitpid(-1) is then the only one that can collect it.
 *
 * The owner embeds a struct child, calls child_init once, and child_close once the exit was
 * delivered (or the spawn failed); ops->closed runs when every handle is closed, its own extra
 * handles included (child_hold_handle). */
#ifndef ARBITER_CHILD_H
#define ARBITER_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "child_output.h"
#include "line_buffer.h"
#include "reaper.h"

#define CHILD_LINE_MAX 4096
#define CHILD_FDS_MAX 32    /* fds from 3 on that a child may inherit */
#define CHILD_NO_CHANNEL ((size_t)-1)

struct child;

struct child_ops {
    const char *kind; /* "worker", "zygote": the prefix of its log events (worker_line_too_long) */
    /* One complete line from the channel. */
    void (*line)(struct child *child, const char *line, size_t length);
    /* The process ended (reaped), once. */
    void (*exited)(struct child *child, int64_t exit_status, int term_signal);
    /* Every handle is closed after child_close: the owner may free itself. NULL: nothing to do. */
    void (*closed)(struct child *child);
};

struct child {
    const struct child_ops *ops;
    void *data;          /* the owner's */
    uv_loop_t *loop;
    struct reaper *reaper; /* NULL only in unit tests that never spawn */
    unsigned id;           /* the worker id its log lines carry; 0 for others */
    int pid;               /* 0 until it exists */
    bool exited;           /* its exit was delivered */
    bool closing;          /* child_close was called */
    int channel_fd;        /* our end of the channel; -1: none */
    unsigned open_handles;
    struct reaper_entry reaped;
    uv_process_t process; /* only for uv_spawn: closed at once (the reaper owns the exit) */
    uv_pipe_t channel;
    struct child_output output; /* its stdout and stderr; not opened for an adopted child without */
    struct line_buffer lines;   /* the channel's framing, over line_storage */
    char line_storage[CHILD_LINE_MAX];
};

/* How to start it. */
struct child_spec {
    char **argv;
    char **env;
    const char *cwd;
    bool output;            /* stdout and stderr into the output pipe (child_output.h), logged */
    int stdout_fd;          /* without output: the fd for 1 and 2; -1: ignored */
    const int *fds;         /* fds 3, 4, ... in this order */
    size_t fd_count;
    size_t channel_at;      /* the channel's other end is fd 3 + channel_at; CHILD_NO_CHANNEL: none */
    bool keep_session;      /* stays in the arbiter's session (the pre-flight); otherwise setsid */
};

/* Zeroes the child (again, for an owner that starts one after another) and sets what it is. */
void child_init(struct child *child, const struct child_ops *ops, void *data, uv_loop_t *loop, struct reaper *reaper,
                unsigned id);

/* Watches channel_fd (our end; -1: none) as lines, and with output makes the output pipe. On failure
 * the fd is closed, err says why and child_close frees what was opened. */
int child_open(struct child *child, int channel_fd, bool output, char *err, size_t err_size);

/* Makes the channel's socketpair and opens it (child_open): the other end is *peer_fd, close-on-exec,
 * for the caller to hand over (uv_spawn, a fork request) and close. */
int child_open_pair(struct child *child, bool output, int *peer_fd, char *err, size_t err_size);

/* uv_spawn of spec after child_open or child_open_pair (peer_fd: the channel's other end, closed
 * here; -1: none). Returns the pid, for the owner's child_started; or -1 with err set when it did
 * not start (child_close then closes what is open). */
int child_spawn(struct child *child, const struct child_spec *spec, int peer_fd, char *err, size_t err_size);

/* The process exists (spawned, forked by a zygote, or adopted after an upgrade): its output is read
 * and the reaper watches it. Returns true when it had already been reaped: the exit was delivered. */
bool child_started(struct child *child, int pid);

/* In-place upgrade: adopts a running child's channel (channel_fd), its output pipe (output_fd >= 0)
 * and its pid. No exit is delivered before the reaper starts. */
int child_adopt(struct child *child, int pid, int channel_fd, int output_fd, char *err, size_t err_size);

/* Stops waiting for its exit (it is abandoned: reaped as an orphan later). */
void child_forget(struct child *child);

/* Reads, without waiting, up to max_reads buffers of what is already in the channel. */
void child_read_waiting(struct child *child, int max_reads);

/* A handle of the owner's (a timer) that child_close closes too: counted now, closed with the rest. */
void child_hold_handle(struct child *child);
void child_close_handle(struct child *child, uv_handle_t *handle);

/* Closes the child's handles (the output is drained and logged first); ops->closed once all are. */
void child_close(struct child *child);

#endif
