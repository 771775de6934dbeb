/* notify.h - systemd's notify protocol and watchdog, without libsystemd. */
#ifndef ARBITER_NOTIFY_H
#define ARBITER_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <uv.h>

struct notify {
    int fd; /* -1 when not under systemd (no NOTIFY_SOCKET) */
    struct sockaddr_un address;
    socklen_t address_length;
    uint64_t watchdog_usec; /* 0: no watchdog */
    uv_timer_t watchdog_timer;
    bool timer_initialised;
};

/* Parses NOTIFY_SOCKET: an absolute path, or "@name" for an abstract socket (whose address length
 * counts exactly the name, no trailing NUL). Returns 0, or -1 with err set. */
int notify_parse_address(const char *text, struct sockaddr_un *address, socklen_t *length, char *err, size_t err_size);

/* Parses WATCHDOG_USEC/WATCHDOG_PID: the watchdog applies when the pid is ours or unset. */
uint64_t notify_parse_watchdog(const char *usec, const char *pid, int self);

/* Reads NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID and removes them from the environment; starts
 * the WATCHDOG=1 timer at half the interval. */
int notify_init(struct notify *notify, uv_loop_t *loop);

/* Sends one datagram of KEY=VALUE lines; does nothing when not under systemd. */
void notify_send(struct notify *notify, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The current CLOCK_MONOTONIC in microseconds, for RELOADING=1's MONOTONIC_USEC. */
uint64_t notify_monotonic_usec(void);

/* Hands fd to systemd's fd store (FDSTORE=1, FDNAME=name); nothing when not under systemd. */
int notify_store_fd(struct notify *notify, int fd, const char *name);

/* A valid FDNAME for listener `index` bound as `text` ("arbiter-0-127.0.0.1_8000"). */
void notify_fd_name(const char *text, size_t index, char *out, size_t size);

void notify_close(struct notify *notify);

#endif
