/* control.c - the control socket server.
 *
 * libuv accepts connections on a UNIX socket that only the arbiter's uid (and, with
 * --control-group, that group) can open; SO_PEERCRED then tells who is asking, and each command's
 * permission is checked against it. Every client has two handles, its pipe and one timer (idle
 * timeout, or the deadline of a command that waits), embedded in struct control_client and closed
 * through control_client_close() — the one path. Input is framed into lines in a fixed buffer; a line
 * that does not fit is answered with line_too_long and the client is dropped, so no input can grow
 * memory. Commands that take time (scale, reload, recycle) park the client and are re-checked on
 * every pool change; their clients read nothing more until answered. */
#define _GNU_SOURCE
#include "control.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arbiter.h"
#include "log.h"

#define CONTROL_MAX_GROUPS 64

struct control_client {
    struct control *control;
    struct control_client *next;
    uv_pipe_t pipe;
    uv_timer_t timer;
    unsigned open_handles;
    bool closing;
    bool close_after_write;
    unsigned pending_writes;
    uid_t uid;
    pid_t pid;
    gid_t groups[CONTROL_MAX_GROUPS];
    size_t group_count;
    bool waiting;
    bool answered;          /* has completed a request: CONTROL_IDLE_MS from now on */
    uint64_t idle_since_ms; /* loop time of the connection or of the last reply */
    uint64_t idle_order;    /* the same as a count (control->idle_count): loop time is cached per turn */
    struct control_request request;
    size_t length;
    char line[CONTROL_LINE_MAX];
};

struct control_write {
    uv_write_t req;
    struct control_client *client;
    char data[];
};

static void control_client_process(struct control_client *client);

static void control_client_on_close(uv_handle_t *handle) {
    struct control_client *client = handle->data;
    if (--client->open_handles == 0)
        free(client);
}

static void control_client_close(struct control_client *client) {
    if (client->closing)
        return;
    client->closing = true;
    struct control *control = client->control;
    for (struct control_client **p = &control->clients; *p; p = &(*p)->next) {
        if (*p == client) {
            *p = client->next;
            control->client_count--;
            break;
        }
    }
    uv_close((uv_handle_t *)&client->pipe, control_client_on_close);
    uv_close((uv_handle_t *)&client->timer, control_client_on_close);
}

static void control_on_write(uv_write_t *req, int status) {
    struct control_write *write = (struct control_write *)req;
    struct control_client *client = write->client;
    client->pending_writes--;
    free(write);
    if (client->closing)
        return;
    if (status < 0 || (client->close_after_write && client->pending_writes == 0))
        control_client_close(client); /* a client that hung up mid-reply just goes away */
}

/* Sends one reply line and releases reply. */
static void control_client_send(struct control_client *client, json_t *reply) {
    char *text = json_dumps(reply, JSON_COMPACT);
    json_decref(reply);
    if (!text) {
        control_client_close(client);
        return;
    }
    size_t length = strlen(text);
    struct control_write *write = malloc(sizeof *write + length + 1);
    if (!write) {
        free(text);
        control_client_close(client);
        return;
    }
    memcpy(write->data, text, length);
    write->data[length] = '\n';
    free(text);
    write->client = client;
    uv_buf_t buf = uv_buf_init(write->data, (unsigned)(length + 1));
    int rc = uv_write(&write->req, (uv_stream_t *)&client->pipe, &buf, 1, control_on_write);
    if (rc != 0) {
        free(write);
        control_client_close(client);
        return;
    }
    client->pending_writes++;
}

static void control_client_send_error(struct control_client *client, const char *code, const char *message) {
    struct control_error error = {.code = code};
    snprintf(error.message, sizeof error.message, "%s", message);
    control_client_send(client, control_error_reply(&error));
}

static void control_on_idle(uv_timer_t *timer);

/* A new connection has CONTROL_FIRST_REQUEST_MS to ask something: an idle client costs a slot. One
 * that was answered may keep its connection longer between requests (a monitor polling status). */
static void control_client_arm_idle(struct control_client *client) {
    client->idle_since_ms = uv_now(client->control->arbiter->loop);
    client->idle_order = ++client->control->idle_count;
    uv_timer_start(&client->timer, control_on_idle, client->answered ? CONTROL_IDLE_MS : CONTROL_FIRST_REQUEST_MS, 0);
}

long control_choose_eviction(const struct control_client_summary *clients, size_t count) {
    long chosen = -1;
    for (size_t i = 0; i < count; i++)
        if (clients[i].idle && (chosen < 0 || clients[i].idle_order < clients[chosen].idle_order))
            chosen = (long)i;
    return chosen;
}

/* Best effort, then closed at once: the slot is free before the next connection is accepted. */
static void control_client_close_busy(struct control_client *client, const char *message) {
    struct control_error error = {.code = "busy"};
    snprintf(error.message, sizeof error.message, "%s", message);
    json_t *reply = control_error_reply(&error);
    char *text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
    json_decref(reply);
    if (text) {
        size_t length = strlen(text);
        char line[sizeof error.message + 128];
        if (length + 1 < sizeof line) {
            memcpy(line, text, length);
            line[length] = '\n';
            uv_buf_t buf = uv_buf_init(line, (unsigned)(length + 1));
            uv_try_write((uv_stream_t *)&client->pipe, &buf, 1); /* a fresh socket's buffer has room */
        }
        free(text);
    }
    control_client_close(client);
}

/* The limit is reached: the client idle the longest leaves; false when every one is busy. */
static bool control_make_room(struct control *control, const struct control_client *arriving) {
    struct control_client_summary summaries[CONTROL_MAX_CLIENTS + 1];
    struct control_client *clients[CONTROL_MAX_CLIENTS + 1];
    size_t count = 0;
    for (struct control_client *c = control->clients; c && count < CONTROL_MAX_CLIENTS + 1; c = c->next) {
        if (c == arriving)
            continue;
        clients[count] = c;
        summaries[count++] = (struct control_client_summary){
            .idle = !c->waiting && !c->closing && c->pending_writes == 0 && !c->close_after_write,
            .idle_order = c->idle_order};
    }
    long victim = control_choose_eviction(summaries, count);
    if (victim < 0)
        return false;
    struct control_client *c = clients[victim];
    log_debug("control_evicted", "closing the control connection of pid %d, idle for %llu ms, to make room for a new "
              "one (%d at once at most)", (int)c->pid,
              (unsigned long long)(uv_now(control->arbiter->loop) - c->idle_since_ms), CONTROL_MAX_CLIENTS);
    control_client_close_busy(c, "closed to make room for a new control client: this one sent no request; "
                                 "connect again when you have one");
    return true;
}

static void control_client_finish_wait(struct control_client *client, enum control_outcome outcome, json_t *reply,
                                       const struct control_error *error) {
    client->waiting = false;
    control_client_send(client, outcome == CONTROL_DONE ? reply : control_error_reply(error));
    if (client->closing)
        return;
    control_client_arm_idle(client);
    control_client_process(client); /* requests that arrived while this one waited */
}

static void control_on_idle(uv_timer_t *timer) {
    struct control_client *client = timer->data;
    if (client->waiting) {
        struct control_error error = {.code = "timeout"};
        snprintf(error.message, sizeof error.message,
                 "'%s' did not complete within %.0f s; it goes on in the background: check `arbiter ctl status`",
                 client->request.command->name, client->request.timeout);
        control_client_finish_wait(client, CONTROL_FAILED, NULL, &error);
        return;
    }
    control_client_close(client); /* connected and silent: bounded time, then gone */
}

static void control_log_command(const struct control_client *client, const char *line, size_t length) {
    char shown[201]; /* valid JSON may still hold a '\r', DEL or UTF-8 cut by a length limit: escaped */
    log_info("control_command", "uid %u (pid %d) ran %s", (unsigned)client->uid, (int)client->pid,
             log_escape_excerpt(shown, sizeof shown, line, length));
}

static void control_client_handle_line(struct control_client *client, const char *line, size_t length) {
    struct control *control = client->control;
    struct control_error error = {0};
    struct control_request *request = &client->request;
    control->commands_total++;
    if (control_parse_request(line, length, request, &error) != 0) {
        control_client_send(client, control_error_reply(&error));
        return;
    }
    const struct control_command *command = request->command;
    if (!control_permitted(command->permission, client->uid, client->groups, client->group_count, geteuid(),
                           control->has_read_group, control->read_group)) {
        log_warning("control_denied", "uid %u (pid %d) may not run '%s'", (unsigned)client->uid, (int)client->pid,
                    command->name);
        snprintf(error.message, sizeof error.message,
                 "permission denied: uid %u may not run '%s'; it needs root or the arbiter's user%s", (unsigned)client->uid,
                 command->name, command->permission == CONTROL_READ ? " or --control-group membership" : "");
        error.code = "permission_denied";
        control_client_send(client, control_error_reply(&error));
        return;
    }
    if (command->permission == CONTROL_WRITE)
        control_log_command(client, line, length);
    json_t *reply = NULL;
    enum control_outcome outcome = command->run(control->arbiter, request, &reply, &error);
    if (outcome == CONTROL_WAIT) {
        client->waiting = true;
        uv_timer_start(&client->timer, control_on_idle, (uint64_t)(request->timeout * 1000), 0);
        return;
    }
    control_client_send(client, outcome == CONTROL_DONE ? reply : control_error_reply(&error));
}

/* Handles every complete line in the buffer, unless a command is waiting. */
static void control_client_process(struct control_client *client) {
    size_t start = 0;
    while (!client->waiting && !client->closing) {
        char *newline = memchr(client->line + start, '\n', client->length - start);
        if (!newline)
            break;
        size_t length = (size_t)(newline - (client->line + start));
        if (length > 0 && !(length == 1 && client->line[start] == '\r')) {
            control_client_handle_line(client, client->line + start, length);
            client->answered = true;
            if (!client->waiting && !client->closing)
                control_client_arm_idle(client); /* answered: the next request gets CONTROL_IDLE_MS again */
        }
        start += length + 1;
    }
    if (client->closing)
        return;
    memmove(client->line, client->line + start, client->length - start);
    client->length -= start;
    if (client->length == sizeof client->line) {
        char message[128];
        snprintf(message, sizeof message, "request longer than %d bytes; send one JSON object per line", CONTROL_LINE_MAX);
        client->length = 0;
        uv_read_stop((uv_stream_t *)&client->pipe);
        client->close_after_write = true;
        control_client_send_error(client, "line_too_long", message);
    }
}

static void control_on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
    struct control_client *client = handle->data;
    (void)suggested;
    *buf = uv_buf_init(client->line + client->length, (unsigned)(sizeof client->line - client->length));
}

static void control_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    struct control_client *client = stream->data;
    (void)buf;
    if (nread < 0) {
        if (client->pending_writes)
            client->close_after_write = true; /* EOF after the request: finish the reply first */
        else if (!client->waiting)
            control_client_close(client);
        uv_read_stop(stream);
        return;
    }
    /* The idle deadline is not pushed back by partial input: a request must be complete within
     * CONTROL_FIRST_REQUEST_MS of the connection (CONTROL_IDLE_MS of the previous reply), however slowly
     * it trickles in. */
    client->length += (size_t)nread;
    control_client_process(client);
}

/* The peer's uid, pid and groups, from the socket itself (SO_PEERCRED, SO_PEERGROUPS): taken at
 * connect time by the kernel, so no pid-reuse race. */
static void control_client_identify(struct control_client *client) {
    uv_os_fd_t fd = -1;
    struct ucred cred = {.pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1};
    socklen_t len = sizeof cred;
    if (uv_fileno((uv_handle_t *)&client->pipe, &fd) == 0 && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
        log_warning("control_peercred", "SO_PEERCRED failed: %s; treating the client as unprivileged", strerror(errno));
    client->uid = cred.uid;
    client->pid = cred.pid;
    client->groups[client->group_count++] = cred.gid;
    gid_t groups[CONTROL_MAX_GROUPS - 1];
    socklen_t groups_len = sizeof groups;
    if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &groups_len) == 0)
        for (size_t i = 0; i < groups_len / sizeof groups[0]; i++)
            client->groups[client->group_count++] = groups[i];
}

static void control_on_connection(uv_stream_t *server, int status) {
    struct control *control = server->data;
    if (status < 0) {
        log_warning("control_accept_failed", "control socket: %s", uv_strerror(status));
        return;
    }
    struct control_client *client = calloc(1, sizeof *client);
    if (!client) {
        log_error("control_accept_failed", "out of memory accepting a control client");
        return;
    }
    client->control = control;
    uv_pipe_init(control->arbiter->loop, &client->pipe, 0);
    uv_timer_init(control->arbiter->loop, &client->timer);
    client->pipe.data = client;
    client->timer.data = client;
    client->open_handles = 2;
    client->next = control->clients;
    control->clients = client;
    control->client_count++;
    if (uv_accept(server, (uv_stream_t *)&client->pipe) != 0) {
        control_client_close(client);
        return;
    }
    if (control->client_count > CONTROL_MAX_CLIENTS && !control_make_room(control, client)) {
        char message[160];
        snprintf(message, sizeof message, "%d control clients are all waiting for commands; try again when one is "
                 "answered", CONTROL_MAX_CLIENTS);
        control_client_close_busy(client, message);
        return;
    }
    control_client_identify(client);
    control_client_arm_idle(client);
    uv_read_start((uv_stream_t *)&client->pipe, control_on_alloc, control_on_read);
}

void control_on_change(struct control *control) {
    if (!control->listening)
        return;
    for (struct control_client *client = control->clients, *next; client; client = next) {
        next = client->next;
        if (!client->waiting || !client->request.command->done)
            continue;
        json_t *reply = NULL;
        struct control_error error = {0};
        enum control_outcome outcome = client->request.command->done(control->arbiter, &client->request, &reply, &error);
        if (outcome != CONTROL_WAIT)
            control_client_finish_wait(client, outcome, reply, &error);
    }
}

/* Creates the default socket's directory if needed; bind() reports any real problem with it. */
static void ensure_dir(const char *dir, mode_t mode) {
    if (mkdir(dir, mode) != 0 && errno != EEXIST)
        log_debug("control_dir", "cannot create %s: %s", dir, strerror(errno));
}

int control_check_private_dir(const char *dir, uid_t uid, char *err, size_t err_size) {
    struct stat st;
    if (lstat(dir, &st) != 0) {
        snprintf(err, err_size, "control directory %s: %s; pass --control PATH", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, err_size, "control directory %s is not a directory (a symlink?); remove it or pass --control PATH", dir);
        return -1;
    }
    if (st.st_uid != uid) {
        snprintf(err, err_size, "control directory %s belongs to uid %u, not to this user (uid %u): someone else "
                                "created it; remove it or pass --control PATH", dir, (unsigned)st.st_uid, (unsigned)uid);
        return -1;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(err, err_size, "control directory %s is writable by others (mode %03o); `chmod 700 %s` or pass "
                                "--control PATH", dir, (unsigned)(st.st_mode & 0777), dir);
        return -1;
    }
    return 0;
}

int control_default_path(const char *name, char *out, size_t size, char *err, size_t err_size) {
    const char *from_env = getenv("ARBITER_CONTROL");
    const char *runtime = getenv("RUNTIME_DIRECTORY");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    int n;
    if (from_env && *from_env) {
        n = snprintf(out, size, "%s", from_env);
    } else if (runtime && *runtime) {
        size_t first = strcspn(runtime, ":"); /* several RuntimeDirectory= entries: the first */
        n = snprintf(out, size, "%.*s/%s.sock", (int)first, runtime, name);
    } else if (geteuid() == 0) {
        ensure_dir("/run/arbiter", 0755); /* traversable: --control-group members connect too */
        n = snprintf(out, size, "/run/arbiter/%s.sock", name);
    } else if (xdg && *xdg) {
        n = snprintf(out, size, "%s/arbiter-%s.sock", xdg, name);
    } else {
        char dir[64];
        snprintf(dir, sizeof dir, "/tmp/arbiter-%u", (unsigned)geteuid());
        ensure_dir(dir, 0700);
        if (control_check_private_dir(dir, geteuid(), err, err_size) != 0) {
            out[0] = '\0';
            return -1;
        }
        n = snprintf(out, size, "%s/%s.sock", dir, name);
    }
    if (n < 0 || (size_t)n >= size) {
        out[0] = '\0';
        snprintf(err, err_size, "the control socket path is too long; pass a shorter --control PATH");
        return -1;
    }
    return 0;
}

static int control_prepare_path(const char *path, char *err, size_t err_size) {
    switch (listener_clear_stale_unix(path)) {
    case STALE_SOCKET_FREE:
        return 0;
    case STALE_SOCKET_REPLACED:
        log_info("stale_socket_replaced", "replacing the stale control socket %s: nobody listened on it (left by an "
                 "arbiter that did not exit cleanly)", path);
        return 0;
    case STALE_SOCKET_NOT_A_SOCKET:
        snprintf(err, err_size, "control socket %s: the path exists and is not a socket; remove it or pass --control", path);
        return -1;
    case STALE_SOCKET_IN_USE:
        snprintf(err, err_size, "another arbiter is running with control socket %s; stop it, or give this one "
                                "another --name or --control", path);
        return -1;
    case STALE_SOCKET_ERROR:
        break;
    }
    snprintf(err, err_size, "control socket %s: cannot check or remove the existing file: %s", path, strerror(errno));
    return -1;
}

int control_start(struct control *control, struct arbiter *arbiter, char *err, size_t err_size) {
    memset(control, 0, sizeof *control);
    control->arbiter = arbiter;
    const struct config *config = arbiter->config;
    if (config->control_path) {
        int n = snprintf(control->path, sizeof control->path, "%s", config->control_path);
        if (n < 0 || (size_t)n >= sizeof control->path) {
            snprintf(err, err_size, "--control %s: the path is too long (at most %zu bytes); pass a shorter one",
                     config->control_path, sizeof control->path - 1);
            return -1;
        }
    } else if (control_default_path(config->name, control->path, sizeof control->path, err, err_size) != 0) {
        return -1;
    }
    if (config->control_group) {
        struct group *group = getgrnam(config->control_group);
        if (!group) {
            snprintf(err, err_size, "--control-group %s: no such group", config->control_group);
            return -1;
        }
        control->has_read_group = true;
        control->read_group = group->gr_gid;
    }
    if (control_prepare_path(control->path, err, err_size) != 0)
        return -1;
    uv_pipe_init(arbiter->loop, &control->server, 0);
    control->server.data = control;
    control->listening = true; /* the handle is open from here on: control_close closes it */
    mode_t old_mask = umask(0177);
    int rc = uv_pipe_bind(&control->server, control->path);
    umask(old_mask);
    if (rc == 0 && control->has_read_group) {
        if (chown(control->path, (uid_t)-1, control->read_group) != 0 || chmod(control->path, 0660) != 0)
            rc = uv_translate_sys_error(errno);
    }
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&control->server, CONTROL_BACKLOG, control_on_connection);
    if (rc != 0) {
        snprintf(err, err_size, "cannot create the control socket %s: %s; pass --control PATH in a writable directory",
                 control->path, uv_strerror(rc));
        return -1;
    }
    log_info("control", "control socket %s", control->path);
    return 0;
}

void control_close(struct control *control) {
    if (!control->listening)
        return;
    control->listening = false;
    while (control->clients)
        control_client_close(control->clients);
    uv_close((uv_handle_t *)&control->server, NULL); /* embedded in struct arbiter */
    struct stat st;
    if (control->path[0] && lstat(control->path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(control->path);
}

/* After an in-place upgrade: the listening socket the previous image had, already bound and listening
 * at the same path (so clients never see it missing). */
int control_adopt(struct control *control, struct arbiter *arbiter, int fd, char *err, size_t err_size) {
    memset(control, 0, sizeof *control);
    control->arbiter = arbiter;
    const struct config *config = arbiter->config;
    if (config->control_path)
        snprintf(control->path, sizeof control->path, "%s", config->control_path);
    else if (control_default_path(config->name, control->path, sizeof control->path, err, err_size) != 0)
        return -1;
    if (config->control_group) {
        struct group *group = getgrnam(config->control_group);
        if (group) {
            control->has_read_group = true;
            control->read_group = group->gr_gid;
        }
    }
    uv_pipe_init(arbiter->loop, &control->server, 0);
    control->server.data = control;
    control->listening = true;
    int rc = uv_pipe_open(&control->server, fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&control->server, CONTROL_BACKLOG, control_on_connection);
    if (rc != 0) {
        snprintf(err, err_size, "cannot adopt the control socket %s (fd %d) from the previous arbiter: %s", control->path,
                 fd, uv_strerror(rc));
        return -1;
    }
    return 0;
}

int control_fd(const struct control *control) {
    uv_os_fd_t fd;
    return control->listening && uv_fileno((const uv_handle_t *)&control->server, &fd) == 0 ? fd : -1;
}

bool control_permitted(enum control_permission permission, uid_t peer_uid, const gid_t *peer_groups, size_t group_count,
                       uid_t own_uid, bool has_read_group, gid_t read_group) {
    if (peer_uid == 0 || peer_uid == own_uid)
        return true;
    if (permission != CONTROL_READ || !has_read_group)
        return false;
    for (size_t i = 0; i < group_count; i++)
        if (peer_groups[i] == read_group)
            return true;
    return false;
}
