/* child_output.h - a child's stdout and stderr: one pipe the arbiter reads and logs, line by line. */
#ifndef ARBITER_CHILD_OUTPUT_H
#define ARBITER_CHILD_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "line_buffer.h"
#include "log.h"

/* The longest line passed on whole; a longer one is cut (a JSON record with a long traceback fits). */
#define CHILD_OUTPUT_LINE_MAX 16384
/* At the child's exit, what is still in the pipe is read at once, up to this much. */
#define CHILD_OUTPUT_DRAIN_MAX (256u * 1024u)

/* After a read, the pipe rests this long before the next: a busy worker's lines are then read many
 * at a time, instead of one wakeup of the arbiter per access line (the pipe holds 64 KiB meanwhile,
 * 650 access lines). Measured with wrk, -w 2, access log to a file: 18 us of arbiter CPU per request
 * at 2 ms, 4 us at 10 ms. */
#define CHILD_OUTPUT_READ_PAUSE_MS 10u

struct child_output {
    uv_pipe_t pipe;   /* our read end; pipe.data belongs to the owner (its close callback) */
    uv_timer_t pause; /* CHILD_OUTPUT_READ_PAUSE_MS between reads; pause.data is the owner's too */
    int write_fd;     /* the child's end until it is handed over; -1 after */
    bool opened;      /* pipe and pause are initialised: the owner counts both among its handles */
    bool ended;       /* EOF: nothing more to read */
    struct log_source source;
    struct line_buffer lines;
    char line_storage[CHILD_OUTPUT_LINE_MAX];
};

/* The handles an opened output adds to its owner's count (close_cb runs once for each). */
#define CHILD_OUTPUT_HANDLES 2u

/* Makes the pipe (both ends close-on-exec) and watches the read end. Returns 0, or -1 with err set
 * and nothing open. The owner sets pipe.data before or after; reading starts in child_output_start. */
int child_output_open(struct child_output *output, uv_loop_t *loop, char *err, size_t err_size);

/* The child's end, for uv_spawn's stdio or a fork request; the caller closes it once handed over
 * (child_output_close_write_end). */
int child_output_write_end(const struct child_output *output);
void child_output_close_write_end(struct child_output *output);

/* The child exists: its lines are read from now on, tagged with kind, id and pid. */
void child_output_start(struct child_output *output, const char *kind, unsigned worker_id, int pid);

/* The child exited: logs what it left in the pipe now (bounded: grandchildren may still hold it),
 * so its last words come before the arbiter's line about its exit. */
void child_output_drain(struct child_output *output);

/* The child exited: reads what it left in the pipe (bounded: grandchildren may still hold it), logs
 * the last unfinished line, and closes the pipe with close_cb. */
void child_output_close(struct child_output *output, uv_close_cb close_cb);

/* In-place upgrade: the read end's fd to hand over, and the adoption of a handed-over one. */
int child_output_fd(const struct child_output *output);
int child_output_adopt(struct child_output *output, uv_loop_t *loop, int fd, const char *kind, unsigned worker_id,
                       int pid, char *err, size_t err_size);

#endif
