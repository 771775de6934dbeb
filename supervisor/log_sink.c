/* log_sink.c - every log line the arbiter writes, its own and its workers', leaves through here.
 *
 * The output is whatever the arbiter was given: a terminal, a pipe to a slow consumer, journald's
 * stream socket, a --log-file on a disk that fills up. None of them may stop the loop, because the
 * loop is what reads heartbeats, reaps children and answers `ctl`. So lines go into one bounded
 * ring buffer (LOG_SINK_CAPACITY) and are written from it without ever waiting; when the output
 * does not keep up, the lines that no longer fit are dropped whole and counted
 * (arbiter_log_lines_dropped_total), and when it moves again one notice says how many went and for
 * how long. Lines in the buffer keep their order, so each worker's lines stay in order.
 *
 * Writing without waiting depends on what the fd is, and must not change how anyone else sharing it
 * sees it: O_NONBLOCK is a flag of the open file description, which a terminal, a shell or the
 * container runtime may share with us, and a program that finds its stdout suddenly non-blocking
 * fails with EAGAIN. So:
 * - a regular file (or block device) is written directly: the kernel never makes a file writer wait
 *   for a reader, and ENOSPC/EIO come back as errors;
 * - a socket (journald's stream) is written with send(MSG_DONTWAIT), a per-call flag;
 * - a pipe, FIFO or tty is reopened through /proc/self/fd/N with O_NONBLOCK: a new open file
 *   description of the same pipe or terminal, ours alone (what libuv's uv_tty_init does for ttys);
 * - only if that reopen fails (no /proc) is O_NONBLOCK set on the shared description, and the
 *   original flags are put back when the sink lets go of the fd.
 * There is no poll handle (uv_poll_init would set O_NONBLOCK on the shared description itself): a
 * blocked output is retried on the next line and by a timer (every 50 ms; a failing one every
 * second), which runs only while something waits. The same timer batches the workers' lines: they
 * are written FLUSH_SOON_MS after they arrive, many in one write, instead of one write per line. A failure other than EAGAIN (ENOSPC, EIO, EPIPE)
 * is reported once, through the owner's callback, and the lines keep being buffered and then
 * dropped until a retry succeeds: logging resumes by itself when space returns. */
#include "log_sink.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define RETRY_BLOCKED_MS 50u
/* Workers' lines are written in batches: at most this late, or at once past FLUSH_SOON_BYTES. One
 * write per access line would cost the arbiter a write(2) per request. */
#define FLUSH_SOON_MS 5u
#define FLUSH_SOON_BYTES (32u * 1024u)
#define RETRY_FAILING_MS 1000u

static void sink_flush(void);

static struct {
    char data[LOG_SINK_CAPACITY];
    size_t head;   /* index of the first buffered byte */
    size_t length; /* bytes buffered */
    int fd;        /* what we write to: the output itself or our private reopening of it */
    bool owns_fd;  /* close fd when the output is replaced */
    int shared_fd; /* LOG_SINK_SHARED_NONBLOCK: the fd whose flags to restore, else -1 */
    int shared_flags;
    enum log_sink_mode mode;
    uint64_t dropped_total, errors_total;
    uint64_t dropped_unreported; /* since the last notice */
    uint64_t stalled_since_ns;   /* when the output stopped taking lines; 0 while it moves */
    int failure;                 /* errno of the failing output; 0 if only blocked, or fine */
    bool flushing;
    uv_loop_t *loop;
    uv_timer_t retry;
    log_sink_resumed_cb on_resumed;
    log_sink_failed_cb on_failed;
} sink = {.fd = STDERR_FILENO, .shared_fd = -1, .mode = LOG_SINK_DIRECT};

enum log_sink_mode log_sink_prepare_fd(int fd, int *out_fd, int *saved_flags) {
    *out_fd = fd;
    *saved_flags = -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) || (S_ISCHR(st.st_mode) && !isatty(fd)))
        return LOG_SINK_DIRECT; /* /dev/null and friends never wait either */
    if (S_ISSOCK(st.st_mode))
        return LOG_SINK_SOCKET;
    char path[32];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int reopened = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY | O_APPEND);
    struct stat again;
    if (reopened >= 0 && fstat(reopened, &again) == 0 && again.st_ino == st.st_ino && again.st_dev == st.st_dev) {
        *out_fd = reopened;
        return LOG_SINK_PRIVATE;
    }
    if (reopened >= 0)
        close(reopened);
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
        return LOG_SINK_DIRECT; /* nothing better is possible: writes may wait */
    *saved_flags = flags;
    return LOG_SINK_SHARED_NONBLOCK;
}

static void sink_release_fd(void) {
    if (sink.shared_fd >= 0)
        fcntl(sink.shared_fd, F_SETFL, sink.shared_flags);
    if (sink.owns_fd)
        close(sink.fd);
    sink.shared_fd = -1;
    sink.owns_fd = false;
}

int log_sink_set_output(int fd, const char *name, char *err, size_t err_size) {
    /* A reader that went away must cost an EPIPE, not the arbiter: SIGPIPE would kill it. */
    signal(SIGPIPE, SIG_IGN);
    int out_fd, saved_flags;
    if (fcntl(fd, F_GETFD) < 0) {
        snprintf(err, err_size, "cannot log to %s: %s (is it open?)", name, strerror(errno));
        return -1;
    }
    enum log_sink_mode mode = log_sink_prepare_fd(fd, &out_fd, &saved_flags);
    sink_release_fd();
    sink.fd = out_fd;
    sink.mode = mode;
    sink.owns_fd = out_fd != fd || fd > STDERR_FILENO;
    sink.shared_fd = mode == LOG_SINK_SHARED_NONBLOCK ? fd : -1;
    sink.shared_flags = saved_flags;
    /* a new output: tried at once (sink_flush, not the failing-output guard of log_sink_flush) */
    sink_flush();
    return 0;
}

void log_sink_set_callbacks(log_sink_resumed_cb resumed, log_sink_failed_cb failed) {
    sink.on_resumed = resumed;
    sink.on_failed = failed;
}

static void sink_copy_in(const char *bytes, size_t length) {
    size_t tail = (sink.head + sink.length) % LOG_SINK_CAPACITY;
    size_t first = LOG_SINK_CAPACITY - tail < length ? LOG_SINK_CAPACITY - tail : length;
    memcpy(sink.data + tail, bytes, first);
    memcpy(sink.data, bytes + first, length - first);
    sink.length += length;
}

bool log_sink_append(const struct iovec *pieces, size_t count) {
    size_t total = 0;
    for (size_t i = 0; i < count; i++)
        total += pieces[i].iov_len;
    if (total > LOG_SINK_CAPACITY - sink.length) {
        sink.dropped_total++;
        sink.dropped_unreported++;
        if (!sink.stalled_since_ns)
            sink.stalled_since_ns = uv_hrtime();
        return false;
    }
    for (size_t i = 0; i < count; i++)
        sink_copy_in(pieces[i].iov_base, pieces[i].iov_len);
    return true;
}

static ssize_t sink_write_out(struct iovec *iov, int count) {
    if (sink.mode == LOG_SINK_SOCKET) {
        struct msghdr message = {.msg_iov = iov, .msg_iovlen = (size_t)count};
        return sendmsg(sink.fd, &message, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    return writev(sink.fd, iov, count);
}

static void sink_on_retry(uv_timer_t *timer);

static void sink_arm_retry(uint64_t ms) {
    if (sink.loop && !uv_is_active((uv_handle_t *)&sink.retry))
        uv_timer_start(&sink.retry, sink_on_retry, ms, 0);
}

static void sink_stalled(int error) {
    if (!sink.stalled_since_ns)
        sink.stalled_since_ns = uv_hrtime();
    if (error != EAGAIN && error != EWOULDBLOCK) {
        sink.errors_total++;
        bool first = sink.failure == 0;
        sink.failure = error;
        if (first && sink.on_failed)
            sink.on_failed(error);
    }
    sink_arm_retry(sink.failure ? RETRY_FAILING_MS : RETRY_BLOCKED_MS);
}

/* The output took bytes after a stall: it moves again once the backlog is down to half. */
static void sink_maybe_resumed(void) {
    if (!sink.stalled_since_ns || sink.length > LOG_SINK_CAPACITY / 2)
        return;
    double seconds = (double)(uv_hrtime() - sink.stalled_since_ns) / 1e9;
    uint64_t dropped = sink.dropped_unreported;
    int failure = sink.failure;
    sink.stalled_since_ns = 0;
    sink.failure = 0;
    sink.dropped_unreported = 0;
    /* The retry timer stays armed if it is: this very flush may have ended on EAGAIN again. */
    if ((dropped || failure) && sink.on_resumed)
        sink.on_resumed(dropped, seconds, failure); /* queues the notice and flushes again */
}

static void sink_flush(void) {
    if (sink.flushing)
        return;
    sink.flushing = true;
    bool wrote = false, failed = false;
    while (sink.length > 0) {
        size_t first = LOG_SINK_CAPACITY - sink.head < sink.length ? LOG_SINK_CAPACITY - sink.head : sink.length;
        struct iovec iov[2] = {{sink.data + sink.head, first}, {sink.data, sink.length - first}};
        int error = 0;
        ssize_t n = sink_write_out(iov, iov[1].iov_len ? 2 : 1);
        if (n < 0)
            error = errno;
        if (n < 0 && error == EINTR)
            continue;
        if (n <= 0) {
            sink_stalled(n == 0 ? EAGAIN : error);
            failed = n < 0 && error != EAGAIN && error != EWOULDBLOCK;
            break;
        }
        wrote = true;
        sink.head = (sink.head + (size_t)n) % LOG_SINK_CAPACITY;
        sink.length -= (size_t)n;
    }
    if (sink.length == 0)
        sink.head = 0;
    sink.flushing = false;
    /* Moving again: it took bytes and did not fail (EAGAIN may have ended this flush: the retry
     * timer is armed); a write that failed after a partial one is still a failure. */
    if (!failed && (wrote || (sink.length == 0 && sink.stalled_since_ns)))
        sink_maybe_resumed();
}

void log_sink_flush(void) {
    if (sink.failure && sink.loop)
        return; /* a failing output is probed by the retry timer alone: one failed write a second */
    sink_flush();
}

void log_sink_flush_soon(void) {
    if (!sink.loop || sink.length >= FLUSH_SOON_BYTES)
        log_sink_flush();
    else if (!sink.failure)
        sink_arm_retry(FLUSH_SOON_MS); /* a retry already armed writes them as well */
}

static void sink_on_retry(uv_timer_t *timer) {
    (void)timer;
    sink_flush();
}

void log_sink_attach(uv_loop_t *loop) {
    sink.loop = loop;
    uv_timer_init(loop, &sink.retry);
    uv_unref((uv_handle_t *)&sink.retry); /* a log retry never keeps the arbiter running */
    log_sink_flush();
}

void log_sink_detach(unsigned timeout_ms) {
    uint64_t deadline = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
    sink_flush();
    while (sink.length > 0 && sink.mode != LOG_SINK_DIRECT) {
        uint64_t now = uv_hrtime();
        if (now >= deadline)
            break;
        struct pollfd p = {.fd = sink.fd, .events = POLLOUT};
        if (poll(&p, 1, (int)((deadline - now) / 1000000u) + 1) <= 0 || (p.revents & (POLLERR | POLLHUP)))
            break;
        sink_flush();
    }
    if (sink.loop) {
        uv_close((uv_handle_t *)&sink.retry, NULL); /* static: nothing to free */
        sink.loop = NULL;
    }
}

int log_sink_fd(void) { return sink.fd; }
uint64_t log_sink_lines_dropped(void) { return sink.dropped_total; }
uint64_t log_sink_write_errors(void) { return sink.errors_total; }
size_t log_sink_buffered(void) { return sink.length; }
enum log_sink_mode log_sink_mode(void) { return sink.mode; }
