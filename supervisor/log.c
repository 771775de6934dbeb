/* log.c - one line per arbiter event on stderr.
 *
 * Two formats: text, readable in a terminal and in `journalctl`, and JSON, one object per line with
 * fixed keys (ts, level, event, worker, pid, message) for log shippers. Lines are formatted into a
 * fixed buffer and written with one write(2), so lines from the arbiter and its workers (which share
 * stderr) never interleave mid-line; an over-long message is truncated, never overflows. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

static struct {
    enum log_level level;
    enum log_format format;
    char name[64];
} log_state = {LOG_INFO, LOG_FORMAT_TEXT, "arbiter"};

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

static void write_line(const char *line, size_t len) {
    int saved = errno;
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, line, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* nowhere left to report a failing stderr */
        line += n;
        len -= (size_t)n;
    }
    errno = saved;
}

void log_event_v(enum log_level level, const char *event, unsigned worker_id, int pid,
                 const char *fmt, va_list args) {
    if (level < log_state.level)
        return;
    char message[LOG_LINE_MAX / 2];
    vsnprintf(message, sizeof message, fmt, args);
    char ts[40];
    format_timestamp(ts, sizeof ts);
    char line[LOG_LINE_MAX];
    int n;
    if (log_state.format == LOG_FORMAT_JSON) {
        json_t *obj = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s}", "ts", ts, "level",
                                level_names[level], "logger", log_state.name, "event", event,
                                "arbiter_pid", (int)getpid(), "message", message);
        if (obj && worker_id)
            json_object_set_new(obj, "worker", json_integer(worker_id));
        if (obj && pid)
            json_object_set_new(obj, "pid", json_integer(pid));
        n = obj ? (int)json_dumpb(obj, line, sizeof line - 1, JSON_COMPACT) : 0;
        json_decref(obj);
        if (n <= 0 || (size_t)n >= sizeof line - 1) /* cannot happen with bounded fields */
            n = snprintf(line, sizeof line - 1, "{\"level\":\"error\",\"message\":\"log line too long\"}");
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
        n = snprintf(line, sizeof line, "%s %s[%d] %-7s %s: %s\n", ts, log_state.name, (int)getpid(),
                     level_names[level], who, message);
    } else {
        n = snprintf(line, sizeof line, "%s %s[%d] %-7s %s\n", ts, log_state.name, (int)getpid(),
                     level_names[level], message);
    }
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line) {
        n = sizeof line;
        line[n - 1] = '\n';
    }
    write_line(line, (size_t)n);
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

int log_use_stdout(char *err, size_t err_size) {
    if (dup2(STDOUT_FILENO, STDERR_FILENO) < 0) {
        snprintf(err, err_size, "--log-file -: cannot point stderr at stdout: %s (is stdout open?)", strerror(errno));
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
    /* dup2 clears close-on-exec on the copies: workers inherit the file as their stdout/stderr. */
    if (dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0) {
        snprintf(err, err_size, "--log-file %s: dup2: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
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
    int fd = STDERR_FILENO;
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
