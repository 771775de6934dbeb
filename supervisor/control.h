/* control.h - the control socket's server: listening, clients, permissions, eviction, the socket path.
 *
 * The protocol it carries, and the commands, are control_commands.h. */
#ifndef ARBITER_CONTROL_H
#define ARBITER_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "control_commands.h"

#define CONTROL_MAX_CLIENTS 256
#define CONTROL_FIRST_REQUEST_MS 1000u
#define CONTROL_IDLE_MS 10000u
#define CONTROL_BACKLOG 128

struct arbiter;
struct control_client;

/* May a peer with uid/gids run a command of this permission? */
bool control_permitted(enum control_permission permission, uid_t peer_uid, const gid_t *peer_groups, size_t group_count,
                       uid_t own_uid, bool has_read_group, gid_t read_group);

/* What the eviction choice needs to know of a connected client. */
struct control_client_summary {
    bool idle;              /* no command of its own parked or being answered */
    uint64_t idle_order; /* when it became idle (connected or last answered), as a count: exact order */
};

/* Which client makes room for a new one when the limit is reached: the one idle the longest;
 * -1 when none is idle (pure: unit-tested). */
long control_choose_eviction(const struct control_client_summary *clients, size_t count);

/* The default control socket path for NAME: $ARBITER_CONTROL, $RUNTIME_DIRECTORY/NAME.sock,
 * /run/arbiter/NAME.sock for root, else $XDG_RUNTIME_DIR/arbiter-NAME.sock or /tmp/arbiter-UID/NAME.sock.
 * Returns 0, or -1 with err set when the path does not fit or the /tmp directory is not private. */
int control_default_path(const char *name, char *out, size_t size, char *err, size_t err_size);

/* /tmp/arbiter-UID is in a world-writable directory, so anyone could have created it first: it must
 * be a real directory (not a symlink), owned by uid, and writable by nobody else. */
int control_check_private_dir(const char *dir, uid_t uid, char *err, size_t err_size);

struct control {
    struct arbiter *arbiter;
    uv_pipe_t server;
    bool listening;
    bool has_read_group;
    gid_t read_group;
    char path[108];
    struct control_client *clients;
    unsigned client_count;
    uint64_t idle_count; /* clients that became idle so far: orders them for eviction */
    uint64_t commands_total;
};

int control_start(struct control *control, struct arbiter *arbiter, char *err, size_t err_size);
/* In-place upgrade: listen on the socket fd the previous image handed over. */
int control_adopt(struct control *control, struct arbiter *arbiter, int fd, char *err, size_t err_size);
/* The listening fd (to hand over in an upgrade), or -1. */
int control_fd(const struct control *control);
/* Re-checks waiting clients after any change in the pool. */
void control_on_change(struct control *control);
void control_close(struct control *control);

#endif
