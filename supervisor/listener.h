/* listener.h - the listening sockets the arbiter owns for its whole life. */
#ifndef ARBITER_LISTENER_H
#define ARBITER_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#define LISTENER_MAX 16
#define LISTENER_TEXT_MAX 160

enum bind_kind { BIND_INET, BIND_UNIX, BIND_FD };

/* One --bind value, parsed; no socket yet. */
struct bind_address {
    enum bind_kind kind;
    struct sockaddr_storage addr; /* BIND_INET, BIND_UNIX */
    socklen_t addr_len;
    int fd;                       /* BIND_FD */
    char text[LISTENER_TEXT_MAX]; /* as the user wrote it, for messages */
};

struct listener {
    struct bind_address address;
    int fd;
    bool adopted;        /* fd:// or systemd's: not ours to unlink */
    bool from_systemd;   /* socket activation: the socket unit owns it, not us */
    ino_t unix_inode;    /* to unlink only the socket file we created */
    char name[LISTENER_TEXT_MAX]; /* resolved, e.g. 127.0.0.1:8000 */
};

struct listener_set {
    struct listener items[LISTENER_MAX];
    size_t count;
    bool reuse_port; /* set before listener_open_all: TCP sockets get SO_REUSEPORT */
};

/* Parses HOST:PORT, [V6]:PORT, unix:PATH, fd://N. Host names are resolved (first address).
 * Returns 0, or -1 with a message naming the problem and the fix in err. */
int listener_parse_address(const char *text, struct bind_address *out, char *err, size_t err_size);

/* Binds and listens on every address; on failure closes what it opened and returns -1 with err set. */
int listener_open_all(struct listener_set *set, const struct bind_address *addresses, size_t count,
                      int backlog, unsigned unix_mode, char *err, size_t err_size);

/* A UNIX socket file left by a dead process refuses connections: remove it. A live one is in use. */
enum stale_socket {
    STALE_SOCKET_FREE,     /* nothing was there */
    STALE_SOCKET_REPLACED, /* a socket file nobody listens on (left by a process that died) was removed */
    STALE_SOCKET_IN_USE,
    STALE_SOCKET_NOT_A_SOCKET,
    STALE_SOCKET_ERROR /* errno set */
};
enum stale_socket listener_clear_stale_unix(const char *path);

/* Validates an inherited fd as a listening stream socket. */
int listener_check_fd(int fd, char *err, size_t err_size);

/* Adds an already-listening fd (systemd socket activation). */
int listener_adopt(struct listener_set *set, int fd, const char *name, char *err, size_t err_size);

void listener_close_all(struct listener_set *set);

/* Whether the listening socket fd is bound to exactly this address (getsockname). */
bool listener_fd_matches(int fd, const struct bind_address *address);

/* As listener_open_all, but an address whose socket is among `stored` (systemd gave back what its fd
 * store kept across a restart) takes that socket instead of binding again: the queue it holds,
 * with the clients that connected during the restart, is served. Taken entries become -1. */
int listener_open_all_reusing(struct listener_set *set, const struct bind_address *addresses, size_t count,
                              int *stored, size_t stored_count, int backlog, unsigned unix_mode, char *err,
                              size_t err_size);
/* --user/--group: gives the unix: socket files the arbiter created to uid and gid ((uid_t)-1 or
 * (gid_t)-1 leaves that one as it is), so that with --socket-mode they are the workers' user's and
 * group's, as with gunicorn. Returns 0, or -1 with err set. */
int listener_chown_unix(const struct listener_set *set, uid_t uid, gid_t gid, char *err, size_t err_size);

/* The end of a graceful stop's lame duck: closes the arbiter's copies of the listeners, so that
 * once the workers have closed theirs the kernel refuses new clients instead of queueing them.
 * systemd's sockets stay open (they belong to the socket unit; their clients wait for the next
 * instance). Socket files stay until listener_close_all, so a client gets ECONNREFUSED, not ENOENT. */
void listener_close_for_stop(struct listener_set *set);

/* Formats a socket's local address as HOST:PORT, [V6]:PORT or unix:PATH. */
void listener_describe(int fd, char *out, size_t size);



/* --reuse-port: another socket in the SO_REUSEPORT group of the TCP listener fd, for one worker
 * slot. Returns the new fd; -1 with err set on failure; -2 when fd is not TCP (the slot shares it). */
int listener_open_sibling(int fd, int backlog, char *err, size_t err_size);

/* A TCP listener's accept queue from TCP_INFO: connections waiting to be accepted and the queue's
 * size (the backlog). -1 for a closed fd or a socket that is not TCP (unix:), where the kernel does
 * not say. */
int listener_queue(int fd, unsigned *waiting, unsigned *size);

/* systemd socket activation: how many fds (from fd 3) LISTEN_PID/LISTEN_FDS hand to process self.
 * Sets *count to 0 when the variables are absent or meant for another pid; -1 when malformed. */
int listener_systemd_count(const char *listen_pid, const char *listen_fds, int self, unsigned *count, char *err,
                           size_t err_size);

/* Adopts fds 3..3+count-1, named from LISTEN_FDNAMES (colon-separated) when given. */
int listener_adopt_systemd(struct listener_set *set, unsigned count, const char *names, char *err, size_t err_size);
#endif
