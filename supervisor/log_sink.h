/* log_sink.h - the one place log lines leave the arbiter: a bounded buffer in front of an output
 * that is never allowed to block the loop (stderr, --log-file, stdout). */
#ifndef ARBITER_LOG_SINK_H
#define ARBITER_LOG_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <uv.h>

/* What the buffer holds at most. While the output is blocked or failing, lines that do not fit are
 * dropped whole and counted; lines already in the buffer go out, in order, when it moves again. */
#define LOG_SINK_CAPACITY (256u * 1024u)

/* How the sink writes to its fd without blocking, chosen by the fd's type (log_sink.c explains). */
enum log_sink_mode {
    LOG_SINK_DIRECT, /* a regular file or block device: write(2) never waits for a reader */
    LOG_SINK_SOCKET, /* a stream socket (journald's): send(MSG_DONTWAIT) */
    LOG_SINK_PRIVATE, /* a pipe, FIFO or tty reopened as our own O_NONBLOCK file description */
    LOG_SINK_SHARED_NONBLOCK, /* the reopen failed: O_NONBLOCK on the shared description, restored at close */
};

/* Called when the output moved again after lines were dropped: the owner (log.c) formats the
 * notice. `failure` is the errno that stopped it (0: it was only blocked: EAGAIN). */
typedef void (*log_sink_resumed_cb)(uint64_t dropped, double seconds, int failure);
/* Called once when a write fails (not EAGAIN), with errno. */
typedef void (*log_sink_failed_cb)(int error);

/* Points the sink at fd (borrowed when it is 0-2, owned otherwise: closed when replaced). The lines
 * still buffered go to the new output. Returns 0, or -1 with err set (the old output stays). */
int log_sink_set_output(int fd, const char *name, char *err, size_t err_size);

void log_sink_set_callbacks(log_sink_resumed_cb resumed, log_sink_failed_cb failed);

/* Queues one line made of `count` pieces (the caller adds the '\n'). Returns false when it was
 * dropped: the buffer is full. Nothing is written yet; log_sink_flush() writes. */
bool log_sink_append(const struct iovec *pieces, size_t count);

/* Writes what the buffer holds, as much as the output takes now, without ever waiting. */
void log_sink_flush(void);

/* Writes within a few milliseconds, in one write with whatever else comes meanwhile (at once when a
 * lot is buffered, or without a loop). For the workers' lines; the arbiter's own flush at once. */
void log_sink_flush_soon(void);

/* Watches the output for writability and retries a failing one (every second) on loop: without a
 * loop the buffer waits for the next flush. The handles do not keep the loop alive. */
void log_sink_attach(uv_loop_t *loop);
/* Closes the handles (the loop then finishes closing them), after one last flush that waits at most
 * timeout_ms for a blocked output. */
void log_sink_detach(unsigned timeout_ms);

/* The fd written to (a --log-file's, for handing it to a worker adopted from an older image). */
int log_sink_fd(void);
uint64_t log_sink_lines_dropped(void);
uint64_t log_sink_write_errors(void);
size_t log_sink_buffered(void);
enum log_sink_mode log_sink_mode(void);

/* Chooses how to write fd without blocking; *out_fd is fd itself or a private reopening of it
 * (close it when it differs from fd). Exposed for the unit tests. */
enum log_sink_mode log_sink_prepare_fd(int fd, int *out_fd, int *saved_flags);

#endif
