/* child.c - one child process: spawn, channel, output, reaper entry, the exit once (child.h). */
#include "child.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

void child_init(struct child *c, const struct child_ops *ops, void *data, uv_loop_t *loop, struct reaper *reaper,
                unsigned id) {
    memset(c, 0, sizeof *c);
    c->ops = ops;
    c->data = data;
    c->loop = loop;
    c->reaper = reaper;
    c->id = id;
    c->channel_fd = -1;
    c->output.write_fd = -1;
}

/* ---- the exit ---- */

static void child_on_reaped(struct reaper_entry *entry, int64_t exit_status, int term_signal) {
    struct child *c = (struct child *)((char *)entry - offsetof(struct child, reaped));
    if (c->exited)
        return;
    c->exited = true;
    c->ops->exited(c, exit_status, term_signal);
}

bool child_started(struct child *c, int pid) {
    c->pid = pid;
    c->reaped.pid = pid;
    c->reaped.exited = child_on_reaped;
    child_output_start(&c->output, c->ops->kind, c->id, pid);
    int64_t exit_status;
    int term_signal;
    if (!c->reaper || !reaper_watch(c->reaper, &c->reaped, &exit_status, &term_signal))
        return false;
    child_on_reaped(&c->reaped, exit_status, term_signal); /* it died before we learned its pid */
    return true;
}

void child_forget(struct child *c) {
    if (c->reaper)
        reaper_unwatch(c->reaper, &c->reaped);
}

/* ---- the channel ---- */

static void child_on_line(void *context, const char *line, size_t length) {
    struct child *c = context;
    c->ops->line(c, line, length);
}

static void child_commit(struct child *c, size_t length) {
    if (!line_buffer_commit(&c->lines, length, child_on_line, c)) {
        char event[48];
        snprintf(event, sizeof event, "%s_line_too_long", c->ops->kind);
        log_event(LOG_WARNING, event, c->id, c->pid, "discarding a channel line longer than %d bytes", CHILD_LINE_MAX - 1);
    }
}

static void child_on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
    struct child *c = handle->data;
    (void)suggested;
    size_t size;
    char *space = line_buffer_space(&c->lines, &size);
    *buf = uv_buf_init(space, (unsigned)size);
}

static void child_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    (void)buf;
    if (nread < 0) {
        uv_read_stop(stream); /* EOF or error: the exit tells what it means */
        return;
    }
    child_commit(stream->data, (size_t)nread);
}

void child_read_waiting(struct child *c, int max_reads) {
    if (c->channel_fd < 0 || c->exited || uv_is_closing((uv_handle_t *)&c->channel))
        return;
    for (int reads = 0; reads < max_reads && !c->exited; reads++) {
        size_t size;
        char *space = line_buffer_space(&c->lines, &size);
        ssize_t n = read(c->channel_fd, space, size); /* the channel is non-blocking: libuv set it so */
        if (n <= 0)
            break; /* EAGAIN: nothing more; EOF or an error: the read callback and the exit tell */
        child_commit(c, (size_t)n);
    }
}

/* ---- handles ---- */

static void child_on_close(uv_handle_t *handle) {
    struct child *c = handle->data;
    if (--c->open_handles == 0 && c->closing && c->ops->closed)
        c->ops->closed(c);
}

void child_hold_handle(struct child *c) { c->open_handles++; }

void child_close_handle(struct child *c, uv_handle_t *handle) {
    if (!handle->loop || uv_is_closing(handle))
        return;
    handle->data = c;
    uv_close(handle, child_on_close);
}

void child_close(struct child *c) {
    if (c->closing)
        return;
    c->closing = true;
    c->output.pipe.data = c;
    child_output_close(&c->output, child_on_close); /* first: what the child left in it is logged */
    child_close_handle(c, (uv_handle_t *)&c->channel);
    if (c->open_handles == 0 && c->ops && c->ops->closed)
        c->ops->closed(c); /* never opened any: a spawn that failed before it began */
}

static int child_watch_channel(struct child *c, int channel_fd, char *err, size_t err_size) {
    if (channel_fd < 0)
        return 0;
    c->channel.data = c;
    uv_pipe_init(c->loop, &c->channel, 0);
    c->open_handles++;
    int rc = uv_pipe_open(&c->channel, channel_fd);
    if (rc != 0) {
        snprintf(err, err_size, "cannot watch the %s channel (fd %d): %s", c->ops->kind, channel_fd, uv_strerror(rc));
        close(channel_fd);
        return -1;
    }
    c->channel_fd = channel_fd;
    line_buffer_init(&c->lines, c->line_storage, sizeof c->line_storage);
    uv_read_start((uv_stream_t *)&c->channel, child_on_alloc, child_on_read);
    return 0;
}

int child_open(struct child *c, int channel_fd, bool output, char *err, size_t err_size) {
    if (child_watch_channel(c, channel_fd, err, err_size) != 0)
        return -1;
    if (!output)
        return 0;
    c->output.pipe.data = c;
    int rc = child_output_open(&c->output, c->loop, err, err_size);
    c->open_handles += c->output.opened ? CHILD_OUTPUT_HANDLES : 0;
    return rc;
}

int child_open_pair(struct child *c, bool output, int *peer_fd, char *err, size_t err_size) {
    int pair[2];
    *peer_fd = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
        snprintf(err, err_size, "socketpair() for the %s channel failed: %s (check the open-files limit, ulimit -n)",
                 c->ops->kind, strerror(errno));
        return -1;
    }
    if (child_open(c, pair[0], output, err, err_size) != 0) {
        close(pair[1]);
        return -1;
    }
    *peer_fd = pair[1];
    return 0;
}

int child_adopt(struct child *c, int pid, int channel_fd, int output_fd, char *err, size_t err_size) {
    if (child_open(c, channel_fd, false, err, err_size) != 0)
        return -1;
    if (output_fd >= 0) {
        c->output.pipe.data = c;
        int rc = child_output_adopt(&c->output, c->loop, output_fd, c->ops->kind, c->id, pid, err, err_size);
        c->open_handles += c->output.opened ? CHILD_OUTPUT_HANDLES : 0;
        if (rc != 0)
            return -1;
    }
    c->pid = pid;
    c->reaped.pid = pid;
    c->reaped.exited = child_on_reaped;
    int64_t exit_status;
    int term_signal;
    if (c->reaper) /* the reaper starts after adoption: nothing is reaped yet */
        reaper_watch(c->reaper, &c->reaped, &exit_status, &term_signal);
    return 0;
}

/* ---- the spawn ---- */

static size_t child_stdio(const struct child *c, const struct child_spec *spec, int peer_fd,
                          uv_stdio_container_t stdio[3 + CHILD_FDS_MAX + 1]) {
    int out = spec->output ? child_output_write_end(&c->output) : spec->stdout_fd;
    size_t count = 0;
    stdio[count++] = (uv_stdio_container_t){.flags = UV_IGNORE};
    for (int i = 0; i < 2; i++) /* stdout and stderr: never the arbiter's own */
        stdio[count++] = out >= 0 ? (uv_stdio_container_t){.flags = UV_INHERIT_FD, .data.fd = out}
                                  : (uv_stdio_container_t){.flags = UV_IGNORE};
    for (size_t i = 0; i <= spec->fd_count && i <= CHILD_FDS_MAX; i++) {
        if (i == spec->channel_at && peer_fd >= 0)
            stdio[count++] = (uv_stdio_container_t){.flags = UV_INHERIT_FD, .data.fd = peer_fd};
        if (i < spec->fd_count && i < CHILD_FDS_MAX)
            stdio[count++] = (uv_stdio_container_t){.flags = UV_INHERIT_FD, .data.fd = spec->fds[i]};
    }
    return count;
}

static void child_on_process_exit(uv_process_t *process, int64_t exit_status, int term_signal) {
    (void)process, (void)exit_status, (void)term_signal; /* never called: the handle closes at once */
}

int child_spawn(struct child *c, const struct child_spec *spec, int peer_fd, char *err, size_t err_size) {
    uv_stdio_container_t stdio[3 + CHILD_FDS_MAX + 1];
    size_t count = child_stdio(c, spec, peer_fd, stdio);
    uv_process_options_t options = {
        .exit_cb = child_on_process_exit,
        .file = spec->argv[0],
        .args = spec->argv,
        .env = spec->env,
        .cwd = spec->cwd,
        /* DETACHED = setsid: a terminal's Ctrl-C reaches the arbiter alone, which decides; and the
         * child leads a process group that a hard kill takes down whole. --user/--group: a worker's
         * and a zygote's argv starts with `arbiter exec-worker` (privileges.c). */
        .flags = spec->keep_session ? 0 : UV_PROCESS_DETACHED,
        .stdio_count = (int)count,
        .stdio = stdio,
    };
    c->process.data = c;
    int rc = uv_spawn(c->loop, &c->process, &options);
    if (peer_fd >= 0)
        close(peer_fd);
    child_output_close_write_end(&c->output);
    c->open_handles++; /* uv_spawn initialises the process handle even when it fails */
    int pid = c->process.pid;
    /* Before the loop runs again: libuv forgets the pid, and only the reaper's waitpid collects it. */
    uv_close((uv_handle_t *)&c->process, child_on_close);
    if (rc != 0) {
        snprintf(err, err_size, "cannot start %s: %s%s", spec->argv[0], uv_strerror(rc),
                 rc == UV_ENOENT   ? " (no such interpreter, or --chdir does not exist)"
                 : rc == UV_EACCES ? " (permission denied: check --python, --chdir and --user)"
                                   : "");
        return -1;
    }
    return pid;
}
