/* listener.c - binding, adopting and closing the listening sockets.
 *
 * The arbiter binds every address once, before any worker starts, and keeps the sockets open until
 * it exits: a worker's death never closes a listener, so connections queued in the kernel's accept
 * queue wait for the next worker instead of being reset. The sockets are plain fds, not libuv
 * handles: the arbiter never accepts on them, and watching them would wake it on every connection.
 * Bind errors are reported with the address, the system's reason and what to do about it. */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

static int parse_port(const char *text, unsigned *port) {
    if (!*text)
        return -1;
    char *end;
    errno = 0;
    unsigned long value = strtoul(text, &end, 10);
    if (errno || *end || value > 65535 || text[0] == '-' || text[0] == '+')
        return -1;
    *port = (unsigned)value;
    return 0;
}

static int parse_unix(const char *path, struct bind_address *out, char *err, size_t err_size) {
    struct sockaddr_un *sun = (struct sockaddr_un *)&out->addr;
    if (!*path) {
        snprintf(err, err_size, "'unix:' needs a path, e.g. unix:/run/app/app.sock");
        return -1;
    }
    if (strlen(path) >= sizeof sun->sun_path) {
        snprintf(err, err_size, "unix socket path '%s' is longer than %zu bytes; choose a shorter path",
                 path, sizeof sun->sun_path - 1);
        return -1;
    }
    out->kind = BIND_UNIX;
    sun->sun_family = AF_UNIX;
    strcpy(sun->sun_path, path);
    out->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
    return 0;
}

static int parse_fd(const char *text, struct bind_address *out, char *err, size_t err_size) {
    char *end;
    errno = 0;
    long fd = strtol(text, &end, 10);
    if (errno || *end || !*text || fd < 0 || fd > 65535) {
        snprintf(err, err_size, "'fd://%s' is not a file descriptor number, e.g. fd://3", text);
        return -1;
    }
    out->kind = BIND_FD;
    out->fd = (int)fd;
    return 0;
}

static int parse_inet(const char *text, struct bind_address *out, char *err, size_t err_size) {
    char host[LISTENER_TEXT_MAX];
    const char *port_text;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':') {
            snprintf(err, err_size, "'%s': an IPv6 address is written [ADDRESS]:PORT, e.g. [::1]:8000", text);
            return -1;
        }
        size_t len = (size_t)(close - text - 1);
        memcpy(host, text + 1, len);
        host[len] = '\0';
        port_text = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (!colon) {
            snprintf(err, err_size, "'%s' has no port; write HOST:PORT (e.g. 127.0.0.1:8000), [V6]:PORT or unix:PATH", text);
            return -1;
        }
        if (strchr(text, ':') != colon) {
            snprintf(err, err_size, "'%s': put an IPv6 address in brackets, e.g. [::1]:8000", text);
            return -1;
        }
        size_t len = (size_t)(colon - text);
        memcpy(host, text, len);
        host[len] = '\0';
        port_text = colon + 1;
    }
    unsigned port;
    if (parse_port(port_text, &port) != 0) {
        snprintf(err, err_size, "'%s': port '%s' is not a number from 0 to 65535", text, port_text);
        return -1;
    }
    const char *lookup = *host ? host : "0.0.0.0";
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *result = NULL;
    int rc = getaddrinfo(lookup, NULL, &hints, &result);
    if (rc != 0 || !result) {
        snprintf(err, err_size, "'%s': cannot resolve host '%s': %s; use an IP address or a name in /etc/hosts",
                 text, lookup, rc ? gai_strerror(rc) : "no address");
        if (result)
            freeaddrinfo(result);
        return -1;
    }
    memcpy(&out->addr, result->ai_addr, result->ai_addrlen);
    out->addr_len = result->ai_addrlen;
    freeaddrinfo(result);
    if (out->addr.ss_family == AF_INET)
        ((struct sockaddr_in *)&out->addr)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&out->addr)->sin6_port = htons((uint16_t)port);
    out->kind = BIND_INET;
    return 0;
}

int listener_parse_address(const char *text, struct bind_address *out, char *err, size_t err_size) {
    memset(out, 0, sizeof *out);
    out->fd = -1;
    if (strlen(text) >= sizeof out->text) {
        snprintf(err, err_size, "bind address is longer than %zu characters", sizeof out->text - 1);
        return -1;
    }
    strcpy(out->text, text);
    if (strncmp(text, "unix:", 5) == 0)
        return parse_unix(text + 5, out, err, err_size);
    if (strncmp(text, "fd://", 5) == 0)
        return parse_fd(text + 5, out, err, err_size);
    if (!*text) {
        snprintf(err, err_size, "empty bind address; write HOST:PORT, [V6]:PORT, unix:PATH or fd://N");
        return -1;
    }
    return parse_inet(text, out, err, err_size);
}

void listener_describe(int fd, char *out, size_t size) {
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    char host[INET6_ADDRSTRLEN];
    if (getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
        snprintf(out, size, "fd %d", fd);
        return;
    }
    if (addr.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&addr;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(out, size, "%s:%u", host, ntohs(in->sin_port));
    } else if (addr.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&addr;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(out, size, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else if (addr.ss_family == AF_UNIX) {
        struct sockaddr_un *sun = (struct sockaddr_un *)&addr;
        if (len > offsetof(struct sockaddr_un, sun_path) && sun->sun_path[0])
            snprintf(out, size, "unix:%.*s", (int)(len - offsetof(struct sockaddr_un, sun_path)), sun->sun_path);
        else
            snprintf(out, size, "unix:(unnamed, fd %d)", fd);
    } else {
        snprintf(out, size, "fd %d", fd);
    }
}

int listener_check_fd(int fd, char *err, size_t err_size) {
    int value = 0;
    socklen_t len = sizeof value;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, err_size, "fd %d is not open (%s); pass an fd the arbiter inherits", fd, strerror(errno));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, err_size, "fd %d is not a socket", fd);
        return -1;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &len) != 0 || value != SOCK_STREAM) {
        snprintf(err, err_size, "fd %d is not a stream (TCP or UNIX stream) socket", fd);
        return -1;
    }
    len = sizeof value;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &len) != 0 || !value) {
        snprintf(err, err_size, "fd %d is a socket but not listening; call listen() on it first (ListenStream= in a .socket unit does)", fd);
        return -1;
    }
    return 0;
}

static int set_cloexec(int fd) {
    int flags = fcntl(fd, F_GETFD);
    return flags < 0 ? -1 : fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

int listener_adopt(struct listener_set *set, int fd, const char *name, char *err, size_t err_size) {
    if (set->count >= LISTENER_MAX) {
        snprintf(err, err_size, "more than %d listeners; bind fewer addresses", LISTENER_MAX);
        return -1;
    }
    if (listener_check_fd(fd, err, err_size) != 0)
        return -1;
    if (set_cloexec(fd) != 0) {
        snprintf(err, err_size, "fd %d: cannot set close-on-exec: %s", fd, strerror(errno));
        return -1;
    }
    struct listener *l = &set->items[set->count++];
    memset(l, 0, sizeof *l);
    l->fd = fd;
    l->adopted = true;
    l->address.kind = BIND_FD;
    l->address.fd = fd;
    snprintf(l->address.text, sizeof l->address.text, "%s", name);
    listener_describe(fd, l->name, sizeof l->name);
    return 0;
}

static const char *bind_advice(int error, const struct bind_address *a) {
    switch (error) {
    case EADDRINUSE:
        return a->kind == BIND_UNIX
                   ? "another process is serving on this socket; stop it or choose another path"
                   : "another process listens there (find it with `ss -ltnp`), stop it or choose another --bind";
    case EACCES:
    case EPERM:
        return a->kind == BIND_UNIX
                   ? "permission denied: the directory must be writable by the arbiter's user (RuntimeDirectory= in a systemd unit makes one)"
                   : "permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE; bind a port >= 1024 behind nginx, or grant the capability";
    case EADDRNOTAVAIL:
        return "no local interface has this address; check `ip addr` or bind 0.0.0.0 / [::]";
    case ENOENT:
        return "the socket's directory does not exist; create it first";
    default:
        return "check the address";
    }
}

enum stale_socket listener_clear_stale_unix(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0)
        return STALE_SOCKET_FREE;
    if (!S_ISSOCK(st.st_mode))
        return STALE_SOCKET_NOT_A_SOCKET;
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof address.sun_path) {
        errno = ENAMETOOLONG;
        return STALE_SOCKET_ERROR;
    }
    strcpy(address.sun_path, path);
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0)
        return STALE_SOCKET_ERROR;
    int rc = connect(probe, (const struct sockaddr *)&address, sizeof address);
    int connect_errno = errno;
    close(probe);
    if (rc == 0)
        return STALE_SOCKET_IN_USE;
    if (connect_errno != ECONNREFUSED)
        return STALE_SOCKET_FREE;
    return unlink(path) == 0 ? STALE_SOCKET_REPLACED : STALE_SOCKET_ERROR;
}

static int clear_stale_unix_socket(const struct bind_address *a, char *err, size_t err_size) {
    switch (listener_clear_stale_unix(((const struct sockaddr_un *)&a->addr)->sun_path)) {
    case STALE_SOCKET_FREE:
        return 0;
    case STALE_SOCKET_REPLACED:
        log_info("stale_socket_replaced", "replacing the stale socket file of %s: nobody listened on it (left by a "
                 "process that did not exit cleanly)", a->text);
        return 0;
    case STALE_SOCKET_NOT_A_SOCKET:
        snprintf(err, err_size, "cannot bind %s: the path exists and is not a socket; remove it or choose another path", a->text);
        return -1;
    case STALE_SOCKET_IN_USE:
        snprintf(err, err_size, "cannot bind %s: address already in use: another process is serving on this socket; stop it or choose another path", a->text);
        return -1;
    case STALE_SOCKET_ERROR:
        break;
    }
    snprintf(err, err_size, "cannot bind %s: cannot check or remove the existing socket file: %s", a->text, strerror(errno));
    return -1;
}

static int open_one(struct listener *l, int backlog, unsigned unix_mode, bool reuse_port, char *err, size_t err_size) {
    const struct bind_address *a = &l->address;
    if (a->kind == BIND_FD) {
        if (listener_check_fd(a->fd, err, err_size) != 0)
            return -1;
        l->fd = a->fd;
        l->adopted = true;
        set_cloexec(l->fd);
        return 0;
    }
    if (a->kind == BIND_UNIX && clear_stale_unix_socket(a, err, err_size) != 0)
        return -1;
    int fd = socket(a->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, err_size, "cannot bind %s: socket(): %s", a->text, strerror(errno));
        return -1;
    }
    int one = 1;
    if (a->kind == BIND_INET && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
        goto fail_errno;
    if (a->kind == BIND_INET && reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
        goto fail_errno;
    if (a->addr.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0)
        goto fail_errno;
    /* Create the socket file with the final mode: no window where it is wider than asked. */
    mode_t old_mask = 0;
    if (a->kind == BIND_UNIX)
        old_mask = umask(0777 & ~unix_mode);
    int rc = bind(fd, (const struct sockaddr *)&a->addr, a->addr_len);
    int bind_errno = errno;
    if (a->kind == BIND_UNIX)
        umask(old_mask);
    if (rc != 0) {
        snprintf(err, err_size, "cannot bind %s: %s: %s", a->text, strerror(bind_errno), bind_advice(bind_errno, a));
        close(fd);
        return -1;
    }
    if (a->kind == BIND_UNIX) {
        struct stat st;
        const char *path = ((const struct sockaddr_un *)&a->addr)->sun_path;
        if (chmod(path, unix_mode) != 0 || stat(path, &st) != 0)
            goto fail_errno;
        l->unix_inode = st.st_ino;
    }
    if (listen(fd, backlog) != 0)
        goto fail_errno;
    l->fd = fd;
    return 0;
fail_errno:
    snprintf(err, err_size, "cannot listen on %s: %s", a->text, strerror(errno));
    close(fd);
    return -1;
}

int listener_open_all(struct listener_set *set, const struct bind_address *addresses, size_t count,
                      int backlog, unsigned unix_mode, char *err, size_t err_size) {
    for (size_t i = 0; i < count; i++) {
        if (set->count >= LISTENER_MAX) {
            snprintf(err, err_size, "more than %d listeners; bind fewer addresses", LISTENER_MAX);
            listener_close_all(set);
            return -1;
        }
        struct listener *l = &set->items[set->count];
        memset(l, 0, sizeof *l);
        l->address = addresses[i];
        if (open_one(l, backlog, unix_mode, set->reuse_port, err, err_size) != 0) {
            listener_close_all(set);
            return -1;
        }
        listener_describe(l->fd, l->name, sizeof l->name);
        set->count++;
    }
    return 0;
}

void listener_close_all(struct listener_set *set) {
    for (size_t i = 0; i < set->count; i++) {
        struct listener *l = &set->items[i];
        if (l->address.kind == BIND_UNIX && !l->adopted) {
            const char *path = ((const struct sockaddr_un *)&l->address.addr)->sun_path;
            struct stat st;
            /* Unlink only if the file is still ours: a newer arbiter may have replaced it. */
            if (stat(path, &st) == 0 && st.st_ino == l->unix_inode)
                unlink(path);
        }
        if (l->fd >= 0)
            close(l->fd);
        l->fd = -1;
    }
    set->count = 0;
}

int listener_chown_unix(const struct listener_set *set, uid_t uid, gid_t gid, char *err, size_t err_size) {
    for (size_t i = 0; i < set->count; i++) {
        const struct listener *l = &set->items[i];
        if (l->address.kind != BIND_UNIX || l->adopted)
            continue;
        const char *path = ((const struct sockaddr_un *)&l->address.addr)->sun_path;
        struct stat st;
        errno = 0;
        /* lchown: the path is ours (we just bound it); never follow a link someone put in its place. */
        if (lstat(path, &st) != 0 || st.st_ino != l->unix_inode || lchown(path, uid, gid) != 0) {
            snprintf(err, err_size, "cannot give %s to --user/--group: %s", l->address.text,
                     errno ? strerror(errno) : "the socket file was replaced");
            return -1;
        }
    }
    return 0;
}

void listener_close_for_stop(struct listener_set *set) {
    for (size_t i = 0; i < set->count; i++) {
        struct listener *l = &set->items[i];
        if (l->from_systemd || l->fd < 0)
            continue;
        close(l->fd);
        l->fd = -1;
    }
}

int listener_systemd_count(const char *listen_pid, const char *listen_fds, int self, unsigned *count, char *err,
                           size_t err_size) {
    *count = 0;
    if (!listen_fds || !*listen_fds)
        return 0;
    char *end;
    errno = 0;
    long pid = listen_pid && *listen_pid ? strtol(listen_pid, &end, 10) : -1;
    if (!listen_pid || !*listen_pid || errno || *end) {
        snprintf(err, err_size, "LISTEN_FDS is set but LISTEN_PID='%s' is not a pid", listen_pid ? listen_pid : "");
        return -1;
    }
    if (pid != self)
        return 0; /* meant for another process (we were started by something that inherited them) */
    errno = 0;
    long n = strtol(listen_fds, &end, 10);
    if (errno || *end || n < 0 || n > LISTENER_MAX) {
        snprintf(err, err_size, "LISTEN_FDS='%s' is not a number from 0 to %d", listen_fds, LISTENER_MAX);
        return -1;
    }
    *count = (unsigned)n;
    return 0;
}

int listener_adopt_systemd(struct listener_set *set, unsigned count, const char *names, char *err, size_t err_size) {
    const char *cursor = names;
    for (unsigned i = 0; i < count; i++) {
        char name[LISTENER_TEXT_MAX];
        size_t len = 0;
        if (cursor && *cursor) {
            const char *colon = strchr(cursor, ':');
            len = colon ? (size_t)(colon - cursor) : strlen(cursor);
            snprintf(name, sizeof name, "systemd:%.*s", (int)(len < 100 ? len : 100), cursor);
            cursor = colon ? colon + 1 : NULL;
        } else {
            snprintf(name, sizeof name, "systemd:fd%u", 3 + i);
        }
        char reason[256];
        if (listener_adopt(set, (int)(3 + i), name, reason, sizeof reason) != 0) {
            snprintf(err, err_size, "socket activation: %s", reason);
            return -1;
        }
        set->items[set->count - 1].from_systemd = true;
    }
    return 0;
}

int listener_open_sibling(int fd, int backlog, char *err, size_t err_size) {
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    if (getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
        snprintf(err, err_size, "getsockname(fd %d): %s", fd, strerror(errno));
        return -1;
    }
    if (addr.ss_family != AF_INET && addr.ss_family != AF_INET6)
        return -2;
    int sibling = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sibling < 0) {
        snprintf(err, err_size, "socket(): %s (check the open-files limit, ulimit -n)", strerror(errno));
        return -1;
    }
    int one = 1;
    if (setsockopt(sibling, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(sibling, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        (addr.ss_family == AF_INET6 && setsockopt(sibling, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) ||
        bind(sibling, (struct sockaddr *)&addr, len) != 0 || listen(sibling, backlog) != 0) {
        char name[LISTENER_TEXT_MAX];
        listener_describe(fd, name, sizeof name);
        snprintf(err, err_size, "cannot open a SO_REUSEPORT listener on %s: %s (was the first one bound with --reuse-port?)",
                 name, strerror(errno));
        close(sibling);
        return -1;
    }
    return sibling;
}

/* Does the listening socket fd serve exactly this --bind address? */
bool listener_fd_matches(int fd, const struct bind_address *address) {
    struct sockaddr_storage local;
    socklen_t length = sizeof local;
    if (address->kind == BIND_FD || getsockname(fd, (struct sockaddr *)&local, &length) != 0 ||
        local.ss_family != address->addr.ss_family)
        return false;
    switch (local.ss_family) {
    case AF_INET: {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&local, *b = (const struct sockaddr_in *)&address->addr;
        return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&local, *b = (const struct sockaddr_in6 *)&address->addr;
        return a->sin6_port == b->sin6_port && memcmp(&a->sin6_addr, &b->sin6_addr, sizeof a->sin6_addr) == 0;
    }
    case AF_UNIX:
        return strncmp(((const struct sockaddr_un *)&local)->sun_path, ((const struct sockaddr_un *)&address->addr)->sun_path,
                       sizeof ((struct sockaddr_un *)0)->sun_path) == 0;
    default:
        return false;
    }
}

int listener_open_all_reusing(struct listener_set *set, const struct bind_address *addresses, size_t count,
                              int *stored, size_t stored_count, int backlog, unsigned unix_mode, char *err,
                              size_t err_size) {
    for (size_t i = 0; i < count; i++) {
        size_t match = stored_count;
        for (size_t j = 0; j < stored_count && match == stored_count; j++)
            if (stored[j] >= 0 && listener_check_fd(stored[j], err, err_size) == 0 && listener_fd_matches(stored[j], &addresses[i]))
                match = j;
        if (match == stored_count) {
            if (listener_open_all(set, &addresses[i], 1, backlog, unix_mode, err, err_size) != 0)
                return -1;
            continue;
        }
        if (set->count >= LISTENER_MAX || set_cloexec(stored[match]) != 0) {
            snprintf(err, err_size, "cannot take listener %s back from systemd's fd store", addresses[i].text);
            listener_close_all(set);
            return -1;
        }
        struct listener *l = &set->items[set->count++];
        memset(l, 0, sizeof *l);
        l->address = addresses[i];
        l->fd = stored[match];
        l->adopted = true; /* its file and its life belong to systemd's store as much as to us */
        l->from_systemd = true;
        listener_describe(l->fd, l->name, sizeof l->name);
        stored[match] = -1;
    }
    return 0;
}

int listener_queue(int fd, unsigned *waiting, unsigned *size) {
    struct tcp_info info;
    socklen_t length = sizeof info;
    if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0)
        return -1;
    *waiting = info.tcpi_unacked; /* on a listener: completed connections not yet accepted */
    *size = info.tcpi_sacked;     /* on a listener: the backlog */
    return 0;
}
