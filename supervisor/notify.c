/* notify.c - tells systemd how the service is doing (Type=notify).
 *
 * The protocol is one datagram of newline-separated KEY=VALUE pairs to the AF_UNIX socket named in
 * NOTIFY_SOCKET; libsystemd is not needed for that, and not linking it keeps the arbiter a single
 * small binary with two dependencies. An address starting with '@' is in the abstract namespace: the
 * '@' becomes a NUL byte and the address length must count exactly the name, or systemd will not
 * recognise it. The variables are removed from the environment at start, so no worker inherits
 * them. A failed send is logged once and never stops the arbiter. */
#define _GNU_SOURCE
#include "notify.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

int notify_parse_address(const char *text, struct sockaddr_un *address, socklen_t *length, char *err, size_t err_size) {
    memset(address, 0, sizeof *address);
    address->sun_family = AF_UNIX;
    size_t len = strlen(text);
    if (len == 0 || (text[0] != '/' && text[0] != '@')) {
        snprintf(err, err_size, "NOTIFY_SOCKET='%s' is neither an absolute path nor an @abstract name", text);
        return -1;
    }
    if (len >= sizeof address->sun_path) {
        snprintf(err, err_size, "NOTIFY_SOCKET is longer than %zu bytes", sizeof address->sun_path - 1);
        return -1;
    }
    memcpy(address->sun_path, text, len);
    if (text[0] == '@') {
        address->sun_path[0] = '\0';
        *length = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    } else {
        *length = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    }
    return 0;
}

/* systemd writes plain decimal digits; strtoull alone would also take " 5" and wrap "-5" to 2^64-5. */
static bool all_digits(const char *text) {
    if (!*text)
        return false;
    for (; *text; text++)
        if (!isdigit((unsigned char)*text))
            return false;
    return true;
}

uint64_t notify_parse_watchdog(const char *usec, const char *pid, int self) {
    if (!usec || !all_digits(usec))
        return 0;
    if (pid && *pid) {
        errno = 0;
        long owner = all_digits(pid) ? strtol(pid, NULL, 10) : -1;
        if (errno || owner != self)
            return 0; /* the watchdog is meant for another process */
    }
    char *end;
    errno = 0;
    unsigned long long value = strtoull(usec, &end, 10);
    if (errno || *end || value == 0)
        return 0;
    return value;
}

uint64_t notify_monotonic_usec(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
}

static void notify_on_watchdog(uv_timer_t *timer) {
    struct notify *notify = timer->data;
    notify_send(notify, "WATCHDOG=1");
}

int notify_init(struct notify *notify, uv_loop_t *loop) {
    memset(notify, 0, sizeof *notify);
    notify->fd = -1;
    const char *socket_name = getenv("NOTIFY_SOCKET");
    notify->watchdog_usec = notify_parse_watchdog(getenv("WATCHDOG_USEC"), getenv("WATCHDOG_PID"), (int)getpid());
    if (socket_name && *socket_name) {
        char err[256];
        if (notify_parse_address(socket_name, &notify->address, &notify->address_length, err, sizeof err) != 0) {
            log_warning("notify_disabled", "%s; not notifying systemd", err);
        } else {
            notify->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
            if (notify->fd < 0)
                log_warning("notify_disabled", "cannot create the notify socket: %s; not notifying systemd", strerror(errno));
        }
    }
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    if (notify->fd >= 0 && notify->watchdog_usec) {
        uint64_t interval_ms = notify->watchdog_usec / 2000;
        uv_timer_init(loop, &notify->watchdog_timer);
        notify->watchdog_timer.data = notify;
        notify->timer_initialised = true;
        /* Due at once, then every half period: after a re-exec in place (ctl upgrade) the ping before
         * the exec is the last one systemd saw, and waiting a whole interval here could let the
         * watchdog expire (two upgrades a few seconds apart did, in the e2e run). */
        uv_timer_start(&notify->watchdog_timer, notify_on_watchdog, 0, interval_ms ? interval_ms : 1);
        log_info("watchdog", "systemd watchdog every %llu ms", (unsigned long long)(interval_ms ? interval_ms : 1));
    }
    return 0;
}

void notify_send(struct notify *notify, const char *fmt, ...) {
    if (notify->fd < 0)
        return;
    char message[1024];
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    if (n < 0 || (size_t)n >= sizeof message)
        return;
    ssize_t sent;
    do
        sent = sendto(notify->fd, message, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&notify->address,
                      notify->address_length);
    while (sent < 0 && errno == EINTR);
    static bool warned;
    if (sent < 0 && !warned) {
        warned = true;
        log_warning("notify_failed", "cannot notify systemd (%s): %s", notify->address.sun_path[0] ? notify->address.sun_path : "abstract socket",
                    strerror(errno));
    }
}

void notify_close(struct notify *notify) {
    if (notify->timer_initialised) {
        notify->timer_initialised = false;
        uv_close((uv_handle_t *)&notify->watchdog_timer, NULL); /* embedded in struct arbiter: nothing to free */
    }
    if (notify->fd >= 0)
        close(notify->fd);
    notify->fd = -1;
}

/* FDSTORE=1 with the fd attached (SCM_RIGHTS): systemd keeps a copy across restarts of the service
 * (with FileDescriptorStoreMax= in the unit; without it systemd drops it) and hands it back in
 * LISTEN_FDS/LISTEN_FDNAMES. The name must be printable ASCII without ':' (sd_pid_notify_with_fds). */
int notify_store_fd(struct notify *notify, int fd, const char *name) {
    if (notify->fd < 0)
        return 0;
    char message[300];
    int n = snprintf(message, sizeof message, "FDSTORE=1\nFDNAME=%s", name);
    if (n < 0 || (size_t)n >= sizeof message)
        return -1;
    union {
        char buffer[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct iovec iov = {.iov_base = message, .iov_len = (size_t)n};
    struct msghdr msg = {.msg_name = &notify->address, .msg_namelen = notify->address_length, .msg_iov = &iov,
                         .msg_iovlen = 1, .msg_control = control.buffer, .msg_controllen = sizeof control.buffer};
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    ssize_t sent;
    do
        sent = sendmsg(notify->fd, &msg, MSG_NOSIGNAL);
    while (sent < 0 && errno == EINTR);
    if (sent < 0) {
        log_warning("fdstore_failed", "cannot hand listener %s to systemd's fd store: %s", name, strerror(errno));
        return -1;
    }
    return 0;
}

void notify_fd_name(const char *text, size_t index, char *out, size_t size) {
    int n = snprintf(out, size, "arbiter-%zu-", index);
    size_t used = n > 0 ? (size_t)n : 0;
    for (const char *c = text; *c && used + 1 < size; c++)
        out[used++] = (*c > 32 && *c < 127 && *c != ':') ? *c : '_';
    out[used < size ? used : size - 1] = '\0';
}
