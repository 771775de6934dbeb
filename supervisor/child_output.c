/* child_output.c - reads what a child process writes to its stdout and stderr.
 *
 * Workers and zygotes do not inherit the arbiter's stderr: a consumer that stops reading it would
 * block them in write(2), and with them the serving. Each child gets the write end of a pipe as both
 * fd 1 and fd 2 (one pipe, so a print and a log line keep the order the child wrote them in), and
 * the arbiter reads the other end on its loop, whatever the output is doing: the lines go to the log
 * sink, which drops and counts what the output cannot take (log.c, log_sink.c). The child never
 * waits on a slow log consumer, only on the arbiter's loop, which drains the pipe at once.
 *
 * Framing is line_buffer's, in cutting mode: a line longer than CHILD_OUTPUT_LINE_MAX is logged cut,
 * the rest of it skipped. When the child exits, the bytes it left in the pipe are read before the
 * pipe closes, so the traceback of a crash is never lost to the order of events in one loop turn. */
#define _GNU_SOURCE /* pipe2 */
#include "child_output.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void child_output_on_line(void *context, const char *line, size_t length) {
    struct child_output *output = context;
    log_output_line(&output->source, line, length);
}

static void child_output_on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    struct child_output *output = (struct child_output *)((char *)handle - offsetof(struct child_output, pipe));
    size_t size;
    buf->base = line_buffer_space(&output->lines, &size);
    buf->len = size;
}

static void child_output_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void child_output_on_pause_end(uv_timer_t *timer) {
    struct child_output *output = (struct child_output *)((char *)timer - offsetof(struct child_output, pause));
    if (!output->ended && !uv_is_closing((uv_handle_t *)&output->pipe))
        uv_read_start((uv_stream_t *)&output->pipe, child_output_on_alloc, child_output_on_read);
}

static void child_output_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    (void)buf;
    struct child_output *output = (struct child_output *)((char *)stream - offsetof(struct child_output, pipe));
    if (nread > 0) {
        line_buffer_commit(&output->lines, (size_t)nread, child_output_on_line, output);
        log_flush_soon();
        uv_read_stop(stream);
        uv_timer_start(&output->pause, child_output_on_pause_end, CHILD_OUTPUT_READ_PAUSE_MS, 0);
    } else if (nread < 0) {
        output->ended = true;
        /* EOF: every holder of the write end is gone. The handle closes with its owner. */
        line_buffer_finish(&output->lines, child_output_on_line, output);
        log_flush();
        uv_read_stop(stream);
    }
}

int child_output_open(struct child_output *output, uv_loop_t *loop, char *err, size_t err_size) {
    output->write_fd = -1;
    output->opened = false;
    int ends[2];
    if (pipe2(ends, O_CLOEXEC) != 0) {
        snprintf(err, err_size, "pipe() for the output of a child failed: %s (check the open-files limit, ulimit -n)",
                 strerror(errno));
        return -1;
    }
    uv_pipe_init(loop, &output->pipe, 0);
    uv_timer_init(loop, &output->pause);
    output->opened = true;
    output->ended = false;
    int rc = uv_pipe_open(&output->pipe, ends[0]); /* O_NONBLOCK on our read end only: the child's end is its own */
    if (rc != 0) {
        snprintf(err, err_size, "cannot watch the output pipe of a child: %s", uv_strerror(rc));
        close(ends[0]);
        close(ends[1]);
        return -1;
    }
    output->write_fd = ends[1];
    line_buffer_init_cutting(&output->lines, output->line_storage, sizeof output->line_storage);
    return 0;
}

int child_output_write_end(const struct child_output *output) { return output->write_fd; }

void child_output_close_write_end(struct child_output *output) {
    if (output->write_fd >= 0)
        close(output->write_fd);
    output->write_fd = -1;
}

void child_output_start(struct child_output *output, const char *kind, unsigned worker_id, int pid) {
    log_source_set(&output->source, kind, worker_id, pid);
    if (output->opened && !uv_is_closing((uv_handle_t *)&output->pipe))
        uv_read_start((uv_stream_t *)&output->pipe, child_output_on_alloc, child_output_on_read);
}

void child_output_drain(struct child_output *output) {
    uv_os_fd_t fd;
    if (!output->opened || !output->source.prefix_length || uv_is_closing((uv_handle_t *)&output->pipe) ||
        uv_fileno((uv_handle_t *)&output->pipe, &fd) != 0)
        return;
    size_t total = 0;
    while (total < CHILD_OUTPUT_DRAIN_MAX) {
        size_t size;
        char *space = line_buffer_space(&output->lines, &size);
        ssize_t n = read(fd, space, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) /* EOF, or EAGAIN: a grandchild still holds the pipe and wrote nothing more */
            break;
        line_buffer_commit(&output->lines, (size_t)n, child_output_on_line, output);
        total += (size_t)n;
    }
    line_buffer_finish(&output->lines, child_output_on_line, output);
    log_flush();
}

void child_output_close(struct child_output *output, uv_close_cb close_cb) {
    if (!output->opened || uv_is_closing((uv_handle_t *)&output->pipe))
        return; /* never opened: write_fd means nothing (a calloc'd owner has 0 there) */
    child_output_close_write_end(output);
    child_output_drain(output);
    output->pause.data = output->pipe.data; /* the owner's, for its close callback */
    uv_close((uv_handle_t *)&output->pipe, close_cb);
    uv_close((uv_handle_t *)&output->pause, close_cb);
}

int child_output_fd(const struct child_output *output) {
    uv_os_fd_t fd = -1;
    if (!output->opened || uv_fileno((const uv_handle_t *)&output->pipe, &fd) != 0)
        return -1;
    return fd;
}

int child_output_adopt(struct child_output *output, uv_loop_t *loop, int fd, const char *kind, unsigned worker_id,
                       int pid, char *err, size_t err_size) {
    output->write_fd = -1;
    uv_pipe_init(loop, &output->pipe, 0);
    uv_timer_init(loop, &output->pause);
    output->opened = true;
    output->ended = false;
    int rc = uv_pipe_open(&output->pipe, fd);
    if (rc != 0) {
        snprintf(err, err_size, "cannot watch the output pipe handed over by the previous image: %s", uv_strerror(rc));
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    line_buffer_init_cutting(&output->lines, output->line_storage, sizeof output->line_storage);
    child_output_start(output, kind, worker_id, pid);
    return 0;
}
