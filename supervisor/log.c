/* log.c - one line per arbiter event, and every line the workers write, on one output.
 *
 * Two formats: text, readable in a terminal and in `journalctl`, and JSON, one object per line with
 * fixed keys (ts, level, event, worker, pid, message) for log shippers. Lines are formatted into a
 * fixed buffer and queued whole in the log sink (log_sink.c), which writes them without ever
 * blocking and drops, counting them, what the output cannot take; an over-long message is
 * truncated, never overflows.
 *
 * Workers do not share our stderr: each writes into a pipe of its own (child_output.c) and its
 * lines come here, to be queued in order behind the arbiter's. Text lines get the worker's
 * `[worker N pid P] ` prefix unless they carry it already (the shim's formatter writes it, uvicorn's
 * levels behind it), so a print, a traceback or a faulthandler dump says whose it is too; in JSON
 * mode a line that is not an object becomes one. Where the output goes (stderr, stdout, a
 * --log-file) is chosen here; how it is written is the sink's business. */
#include "log.h"

#include "log_sink.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096
#define LOG_FINAL_FLUSH_MS 1000u /* at exit, how long a blocked output may hold the last lines */

static struct {
    enum log_level level;
    enum log_format format;
    char name[64];
    char output_name[256]; /* stderr, stdout or the --log-file path */
} log_state = {LOG_INFO, LOG_FORMAT_TEXT, "arbiter", "stderr"};

static const char *const level_names[] = {"debug", "info", "warning", "error", "critical"};

int log_level_parse(const char *name, enum log_level *level) {
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *level = (enum log_level)i;
            return 0;
        }
    }
    if (strcasecmp(name, "trace") == 0) {
        *level = LOG_DEBUG;
        return 0;
    }
    if (strcasecmp(name, "warn") == 0) {
        *level = LOG_WARNING;
        return 0;
    }
    return -1;
}

const char *log_level_name(enum log_level level) { return level_names[level]; }

int log_format_parse(const char *name, enum log_format *format) {
    if (strcmp(name, "text") == 0) {
        *format = LOG_FORMAT_TEXT;
        return 0;
    }
    if (strcmp(name, "json") == 0) {
        *format = LOG_FORMAT_JSON;
        return 0;
    }
    return -1;
}

void log_configure(enum log_level level, enum log_format format, const char *name) {
    log_state.level = level;
    log_state.format = format;
    snprintf(log_state.name, sizeof log_state.name, "%s", name && *name ? name : "arbiter");
}

static void format_timestamp(char *out, size_t size) {
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, size - n, ".%03ldZ", now.tv_nsec / 1000000);
}

/* A line for the sink; the caller flushes. */
static void queue_line(const char *line, size_t len) {
    struct iovec piece = {(void *)line, len};
    log_sink_append(&piece, 1);
}

static void write_line(const char *line, size_t len) {
    int saved = errno;
    queue_line(line, len);
    log_sink_flush();
    errno = saved;
}

/* Formats one line (with its '\n') into line[LOG_LINE_MAX]; returns its length, or 0. */
static size_t format_event(char *line, enum log_level level, const char *event, unsigned worker_id, int pid,
                           const char *fmt, va_list args) {
    char message[LOG_LINE_MAX / 2];
    vsnprintf(message, sizeof message, fmt, args);
    char ts[40];
    format_timestamp(ts, sizeof ts);
    int n;
    if (log_state.format == LOG_FORMAT_JSON) {
        json_t *obj = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s}", "ts", ts, "level",
                                level_names[level], "logger", log_state.name, "event", event,
                                "arbiter_pid", (int)getpid(), "message", message);
        if (obj && worker_id)
            json_object_set_new(obj, "worker", json_integer(worker_id));
        if (obj && pid)
            json_object_set_new(obj, "pid", json_integer(pid));
        n = obj ? (int)json_dumpb(obj, line, LOG_LINE_MAX - 1, JSON_COMPACT) : 0;
        json_decref(obj);
        if (n <= 0 || (size_t)n >= LOG_LINE_MAX - 1) /* cannot happen with bounded fields */
            n = snprintf(line, LOG_LINE_MAX - 1, "{\"level\":\"error\",\"message\":\"log line too long\"}");
        line[n++] = '\n';
    } else if (worker_id || pid) {
        /* A worker that never ran has no pid, and the zygote (worker 0) is no worker: say neither. */
        char who[48];
        if (worker_id && pid)
            snprintf(who, sizeof who, "worker %u (pid %d)", worker_id, pid);
        else if (worker_id)
            snprintf(who, sizeof who, "worker %u", worker_id);
        else
            snprintf(who, sizeof who, "pid %d", pid);
        n = snprintf(line, LOG_LINE_MAX, "%s %s[%d] %-7s %s: %s\n", ts, log_state.name, (int)getpid(),
                     level_names[level], who, message);
    } else {
        n = snprintf(line, LOG_LINE_MAX, "%s %s[%d] %-7s %s\n", ts, log_state.name, (int)getpid(),
                     level_names[level], message);
    }
    if (n < 0)
        return 0;
    if ((size_t)n >= LOG_LINE_MAX) {
        n = LOG_LINE_MAX;
        line[n - 1] = '\n';
    }
    return (size_t)n;
}

static size_t format_message(char *line, enum log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static size_t format_message(char *line, enum log_level level, const char *event, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    size_t n = format_event(line, level, event, 0, 0, fmt, args);
    va_end(args);
    return n;
}

void log_event_v(enum log_level level, const char *event, unsigned worker_id, int pid,
                 const char *fmt, va_list args) {
    if (level < log_state.level)
        return;
    char line[LOG_LINE_MAX];
    size_t n = format_event(line, level, event, worker_id, pid, fmt, args);
    if (n)
        write_line(line, n);
}

void log_event(enum log_level level, const char *event, unsigned worker_id, int pid,
               const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    log_event_v(level, event, worker_id, pid, fmt, args);
    va_end(args);
}

const char *log_escape_excerpt(char *out, size_t size, const char *bytes, size_t length) {
    static const char hex[] = "0123456789abcdef";
    static const char ellipsis[] = "...";
    if (size == 0)
        return out;
    size_t room = size - 1, n = 0;
    size_t cut = 0; /* the last whole-character end that still leaves room for the ellipsis */
    for (size_t i = 0; i < length; i++) {
        if (n + sizeof ellipsis - 1 <= room)
            cut = n;
        unsigned char c = (unsigned char)bytes[i];
        char piece[4];
        size_t width;
        if (c == '\\') {
            piece[0] = piece[1] = '\\';
            width = 2;
        } else if (c >= 0x20 && c < 0x7f) {
            piece[0] = (char)c;
            width = 1;
        } else {
            piece[0] = '\\';
            piece[1] = 'x';
            piece[2] = hex[c >> 4];
            piece[3] = hex[c & 15];
            width = 4;
        }
        if (n + width > room) {
            n = cut;
            for (size_t k = 0; k < sizeof ellipsis - 1 && n < room; k++)
                out[n++] = ellipsis[k];
            break;
        }
        memcpy(out + n, piece, width);
        n += width;
    }
    out[n] = '\0';
    return out;
}

/* "1234567" as "1,234,567": the notice is read by people. */
static const char *format_count(char *out, size_t size, uint64_t value) {
    char digits[24];
    int length = snprintf(digits, sizeof digits, "%llu", (unsigned long long)value);
    size_t n = 0;
    for (int i = 0; i < length && n + 2 < size; i++) {
        if (i > 0 && (length - i) % 3 == 0)
            out[n++] = ',';
        out[n++] = digits[i];
    }
    out[n] = '\0';
    return out;
}

static void on_output_resumed(uint64_t dropped, double seconds, int failure) {
    char count[32];
    if (failure)
        log_event(LOG_WARNING, "log_output_resumed", 0, 0, "%s log lines dropped (output failed for %.1f s: %s); writing again",
                  format_count(count, sizeof count, dropped), seconds, strerror(failure));
    else
        log_event(LOG_WARNING, "log_lines_dropped", 0, 0, "%s log lines dropped (output blocked for %.1f s)",
                  format_count(count, sizeof count, dropped), seconds);
}

/* Said once per failure, where someone can read it: on stderr when the failing output is a
 * --log-file, else on the output itself, which will carry it if it recovers. One poll-gated
 * write of less than PIPE_BUF bytes: it never waits, and a full stderr only loses the report. */
static void on_output_failed(int error) {
    char line[LOG_LINE_MAX];
    const char *hint = error == ENOSPC ? "free space on its filesystem"
                       : error == EPIPE ? "the reader of the log output went away"
                       : error == EIO   ? "the device reports an I/O error"
                                        : "see the reason";
    char message[LOG_LINE_MAX / 4];
    snprintf(message, sizeof message,
             "cannot write the log output %s: %s (%s); log lines are buffered (%u KiB), then dropped and counted in "
             "arbiter_log_lines_dropped_total, and logging resumes by itself when it can be written again",
             log_state.output_name, strerror(error), hint, LOG_SINK_CAPACITY / 1024);
    if (log_sink_fd() == STDERR_FILENO || log_state.output_name[0] != '/') {
        log_event(LOG_ERROR, "log_output_failed", 0, 0, "%s", message);
        return;
    }
    size_t n = format_message(line, LOG_ERROR, "log_output_failed", "%s", message);
    struct pollfd p = {.fd = STDERR_FILENO, .events = POLLOUT};
    if (n && poll(&p, 1, 0) == 1 && (p.revents & POLLOUT)) {
        ssize_t written = write(STDERR_FILENO, line, n < PIPE_BUF ? n : PIPE_BUF);
        (void)written; /* nowhere left to report a failing stderr */
    }
}

static int log_set_output(int fd, const char *name, char *err, size_t err_size) {
    log_sink_set_callbacks(on_output_resumed, on_output_failed);
    if (log_sink_set_output(fd, name, err, err_size) != 0)
        return -1;
    snprintf(log_state.output_name, sizeof log_state.output_name, "%s", name);
    return 0;
}

int log_use_stderr(char *err, size_t err_size) { return log_set_output(STDERR_FILENO, "stderr", err, err_size); }

int log_use_stdout(char *err, size_t err_size) {
    if (log_set_output(STDOUT_FILENO, "stdout", err, err_size) != 0) {
        snprintf(err, err_size, "--log-file -: cannot log to stdout: %s (is stdout open?)", strerror(errno));
        return -1;
    }
    return 0;
}

int log_open_file(const char *path, char *err, size_t err_size) {
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(err, err_size, "--log-file %s: %s", path, strerror(errno));
        return -1;
    }
    char name[sizeof log_state.output_name];
    snprintf(name, sizeof name, "%s", path);
    if (log_set_output(fd, name, err, err_size) != 0) {
        close(fd);
        return -1;
    }
    return 0;
}

void log_attach(uv_loop_t *loop) { log_sink_attach(loop); }
void log_detach(void) { log_sink_detach(LOG_FINAL_FLUSH_MS); }
void log_flush(void) { log_sink_flush(); }
void log_flush_soon(void) { log_sink_flush_soon(); }
uint64_t log_lines_dropped(void) { return log_sink_lines_dropped(); }
uint64_t log_write_errors(void) { return log_sink_write_errors(); }

void log_source_set(struct log_source *source, const char *kind, unsigned worker_id, int pid) {
    source->worker_id = worker_id;
    source->pid = pid;
    int n = worker_id ? snprintf(source->prefix, sizeof source->prefix, "[%s %u pid %d] ", kind, worker_id, pid)
                      : snprintf(source->prefix, sizeof source->prefix, "[%s pid %d] ", kind, pid);
    source->prefix_length = n > 0 && (size_t)n < sizeof source->prefix ? (size_t)n : 0;
    snprintf(source->kind, sizeof source->kind, "%s", kind);
}

/* JSON mode: a line that already is an object (the shim's formatter) goes as is; anything else
 * (print, a traceback, faulthandler) is wrapped into one with the fields the shim uses. */
static bool output_line_json(const struct log_source *source, const char *line, size_t length) {
    if (length >= 2 && line[0] == '{' && line[length - 1] == '}') {
        struct iovec pieces[2] = {{(void *)line, length}, {"\n", 1}};
        return log_sink_append(pieces, 2);
    }
    char ts[40];
    format_timestamp(ts, sizeof ts);
    json_t *message = json_stringn(line, length);
    if (!message) { /* not UTF-8: escaped */
        char escaped[LOG_LINE_MAX];
        message = json_string(log_escape_excerpt(escaped, sizeof escaped, line, length));
    }
    json_t *obj = json_pack("{s:s, s:s, s:s, s:o}", "ts", ts, "level", "info", "logger", source->kind, "message", message);
    if (obj && source->worker_id)
        json_object_set_new(obj, "worker", json_integer(source->worker_id));
    if (obj && source->pid)
        json_object_set_new(obj, "pid", json_integer(source->pid));
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!text)
        return false;
    struct iovec pieces[2] = {{text, strlen(text)}, {"\n", 1}};
    bool queued = log_sink_append(pieces, 2);
    free(text);
    return queued;
}

bool log_output_line(const struct log_source *source, const char *line, size_t length) {
    if (log_state.format == LOG_FORMAT_JSON)
        return output_line_json(source, line, length);
    /* The shim's own formatter already starts its lines with this very prefix; prints do not. */
    bool prefixed = length >= source->prefix_length && memcmp(line, source->prefix, source->prefix_length) == 0;
    struct iovec pieces[3] = {{(void *)source->prefix, prefixed ? 0 : source->prefix_length}, {(void *)line, length}, {"\n", 1}};
    return log_sink_append(pieces, 3);
}

int log_send_file(int channel_fd, char *err, size_t err_size) {
    static const char message[] = "{\"type\":\"log_file\"}\n";
    struct iovec iov = {.iov_base = (void *)message, .iov_len = sizeof message - 1};
    union {
        struct cmsghdr header;
        char buffer[CMSG_SPACE(sizeof(int))];
    } control;
    memset(&control, 0, sizeof control);
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buffer,
                         .msg_controllen = sizeof control.buffer};
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    int fd = log_sink_fd();
    memcpy(CMSG_DATA(cmsg), &fd, sizeof fd);
    ssize_t sent;
    do
        sent = sendmsg(channel_fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (sent < 0 && errno == EINTR);
    if (sent != (ssize_t)iov.iov_len) {
        /* EAGAIN: the worker has not read its channel for a long time (its loop is blocked). */
        snprintf(err, err_size, "cannot hand the log file over the worker channel: %s",
                 sent < 0 ? strerror(errno) : "short write");
        return -1;
    }
    return 0;
}
