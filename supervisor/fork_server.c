/* fork_server.c - the fork server (--preload): the spawner whose workers a zygote forks.
 *
 * gunicorn's --preload imports the app in the master and forks workers from it, so the master runs
 * app code and can never load new code. Here the app is imported by a zygote, a child of the
 * arbiter running the shim in zygote mode (zygote.c: the process), which imports the app once and
 * then forks one worker per request this fork server sends. It double-forks, so every worker is re-parented to the
 * arbiter (a subreaper) and supervised exactly like an exec'd one: the reaper delivers its exit, its
 * channel is its own, and nothing here knows more about a running worker than its pid.
 *
 * A reload starts a zygote for the next generation (a fresh import of the new code); until it is
 * ready every fork waits for it; if it fails to import, the reload fails and the old zygote keeps
 * forking. A zygote that dies is restarted with backoff, and its workers are not touched.
 *
 * Requests go one at a time: the request line and its fds (the worker's channel end, then the
 * listeners, then the board) travel in one sendmsg with SCM_RIGHTS, and the next is sent only after
 * the answer ({"type":"forked","pid":P,"fds":{...}} or {"type":"fork_failed","error":...}), so the
 * zygote never has to split one read into two requests' fds.
 *
 * The descriptors a forked worker uses are wherever the zygote received them: numbers that were
 * free in the zygote, so never one the app opened at import (its files, sockets, mmaps stay what
 * they are in every worker). The answer names them; they are checked against the request here
 * (as many listeners as sent, all above stdio, no two alike), so the two sides agree or the worker
 * does not run. */
#define _GNU_SOURCE
#include "fork_server.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "environment.h"
#include "launch.h"
#include "log.h"
#include "worker.h"

#define FORK_DEADLINE_MS 10000u /* a zygote that takes longer to fork is hung: killed and restarted */
#define ZYGOTE_REQUEST_MAX 4096u /* zygote.py's MAX_REQUEST_BYTES: the longest fork request it reads */

extern char **environ;

static struct fork_server *server_of(struct spawner *spawner) {
    return (struct fork_server *)((char *)spawner - offsetof(struct fork_server, spawner));
}

static const struct spawner_env *server_env(const struct fork_server *server) { return server->spawner.env; }

static void fork_server_pump(struct fork_server *server);
static struct zygote *fork_server_start_zygote(struct fork_server *server, unsigned generation);

/* ---- requests ---- */

static void request_free(struct fork_request *request) {
    if (request->channel_fd >= 0)
        close(request->channel_fd);
    free(request);
}

static struct fork_request *queue_pop(struct fork_server *server) {
    struct fork_request *request = server->queue;
    if (request) {
        server->queue = request->next;
        if (!server->queue)
            server->queue_tail = &server->queue;
    }
    return request;
}

/* The worker will not be forked: it exits as a spawn failure (exit_status 3 when the app's import
 * failed, so a pool that never served exits 3 with the traceback above). */
static void request_fail(struct fork_request *request, const char *reason, int exit_status) {
    struct worker *w = request->worker;
    request_free(request);
    w->exit_status = exit_status;
    worker_spawn_failed(w, reason);
}

static void fork_server_fail_queue(struct fork_server *server, const char *reason, int exit_status) {
    struct fork_request *request;
    while ((request = queue_pop(server)))
        request_fail(request, reason, exit_status);
}

/* ---- the zygotes ---- */

/* A zygote that is no longer needed goes quietly; one with a fork on the wire finishes it first. */
static void zygote_retire(struct fork_server *server, struct zygote *z) {
    z->stop_requested = true;
    if (server->in_flight_zygote != z)
        zygote_signal(z, SIGTERM);
}

static void zygote_promote(struct fork_server *server, struct zygote *z) {
    struct zygote *old = server->current;
    server->current = z;
    server->next = NULL;
    if (old && old != z) {
        log_info("zygote_replaced", "generation %u's zygote (pid %d) takes over; the previous one (pid %d) exits",
                 z->generation, z->pid, old->pid);
        zygote_retire(server, old);
    }
}

static void fork_server_on_zygote_ready(struct zygote *z, void *data) {
    struct fork_server *server = data;
    server->backoff.failures = 0;
    if (z == server->next || !server->current)
        zygote_promote(server, z);
    fork_server_pump(server);
}

/* The fds of a `forked` answer against what the request sent: NULL if they agree (or the zygote is
 * one from before the answer named them), otherwise what is wrong. */
static const char *fork_answer_fds_problem(const json_t *fds, const struct fork_request *request) {
    if (!fds)
        return NULL;
    const json_t *listen = json_object_get(fds, "listen");
    json_int_t channel = json_integer_value(json_object_get(fds, "channel"));
    const json_t *board = json_object_get(fds, "board");
    if (!json_is_array(listen) || json_array_size(listen) != request->listen_fd_count)
        return "the worker's listeners are not the ones sent";
    if (channel <= STDERR_FILENO)
        return "the worker's channel is not above fds 0-2";
    if (request->board_index ? json_integer_value(board) <= STDERR_FILENO : !json_is_null(board) && board != NULL)
        return "the worker's board is not the one sent";
    json_int_t seen[2 + LISTENER_MAX];
    size_t count = 0;
    seen[count++] = channel;
    if (request->board_index)
        seen[count++] = json_integer_value(board);
    for (size_t i = 0; i < json_array_size(listen); i++)
        seen[count++] = json_integer_value(json_array_get(listen, i));
    for (size_t i = 0; i < count; i++) {
        if (seen[i] <= STDERR_FILENO)
            return "a worker's listener is not above fds 0-2";
        for (size_t j = 0; j < i; j++)
            if (seen[i] == seen[j])
                return "two of the worker's fds have the same number";
    }
    return NULL;
}

static void fork_answer_log_fds(const struct worker *w, int pid, const json_t *fds) {
    char listen[8 * LISTENER_MAX + 1] = "";
    const json_t *list = json_object_get(fds, "listen");
    size_t used = 0;
    for (size_t i = 0; i < json_array_size(list) && used < sizeof listen; i++)
        used += (size_t)snprintf(listen + used, sizeof listen - used, "%s%lld", i ? "," : "",
                                 (long long)json_integer_value(json_array_get(list, i)));
    log_event(LOG_DEBUG, "worker_forked", w->slot_id, pid, "forked by the zygote: listeners at fds %s, channel %lld, board %lld",
              listen[0] ? listen : "(none)", (long long)json_integer_value(json_object_get(fds, "channel")),
              (long long)json_integer_value(json_object_get(fds, "board")));
}

static void fork_server_on_fork_answer(struct zygote *z, int pid, const char *error, const json_t *fds, void *data) {
    struct fork_server *server = data;
    struct fork_request *request = server->in_flight;
    if (!request || server->in_flight_zygote != z) {
        log_event(LOG_WARNING, "zygote_unexpected_answer", 0, z->pid, "ignoring a fork answer nobody asked for");
        return;
    }
    server->in_flight = NULL;
    server->in_flight_zygote = NULL;
    uv_timer_stop(&server->fork_deadline);
    const char *fds_problem = pid > 0 ? fork_answer_fds_problem(fds, request) : NULL;
    if (fds_problem) {
        log_event(LOG_ERROR, "zygote_fds_mismatch", request->worker->slot_id, pid,
                  "the zygote's answer does not match the fork request (%s): killing the worker; the zygote and "
                  "the arbiter come from different installs? restart the arbiter", fds_problem);
        if (kill(pid, SIGKILL) != 0 && errno != ESRCH)
            log_error("zygote_kill_failed", "cannot kill pid %d: %s", pid, strerror(errno));
        pid = -1;
        error = fds_problem;
    }
    if (pid > 0) {
        struct worker *w = request->worker;
        if (fds)
            fork_answer_log_fds(w, pid, fds);
        z->forks++;
        w->generation = z->generation;
        request_free(request);
        worker_started(w, pid);
    } else {
        char reason[200];
        snprintf(reason, sizeof reason, "the zygote could not fork it: %.150s", error ? error : "no reason given");
        request_fail(request, reason, 0);
    }
    if (z->stop_requested)
        zygote_signal(z, SIGTERM);
    fork_server_pump(server);
}

static void zygote_schedule_restart(struct fork_server *server);

static void fork_server_on_zygote_exit(struct zygote *z, bool was_ready, void *data) {
    struct fork_server *server = data;
    const struct spawner_env *env = server_env(server);
    int64_t exit_status = z->exit_status;
    int term_signal = z->term_signal;
    server->live_zygotes--;
    char how[64];
    if (term_signal)
        snprintf(how, sizeof how, "killed by signal %d (%s)", term_signal, strsignal(term_signal));
    else
        snprintf(how, sizeof how, "exit code %lld", (long long)exit_status);
    if (server->in_flight_zygote == z) {
        struct fork_request *request = server->in_flight;
        server->in_flight = NULL;
        server->in_flight_zygote = NULL;
        uv_timer_stop(&server->fork_deadline);
        request_fail(request, "the zygote exited before it forked the worker", 0);
    }
    bool current = server->current == z, next = server->next == z;
    if (current)
        server->current = NULL;
    if (next)
        server->next = NULL;
    if (server->stopping || (z->stop_requested && !current && !next)) {
        log_event(LOG_DEBUG, "zygote_exited", 0, z->pid, "zygote of generation %u stopped: %s", z->generation, how);
    } else if (!was_ready) {
        /* Say only what is known: a refusal names itself; exit 3 without one is a failed import (the
         * shim printed the traceback); anything else is in the zygote's own output. */
        char reason[400];
        if (z->refusal[0])
            snprintf(reason, sizeof reason, "the app imported, but the zygote for generation %u refused to fork it: %s "
                     "(what to do is above)", z->generation, z->refusal);
        else if (!term_signal && exit_status == 3)
            snprintf(reason, sizeof reason, "the zygote for generation %u could not import the app (exit code 3); the "
                     "traceback is above", z->generation);
        else
            snprintf(reason, sizeof reason, "the zygote for generation %u failed before it was ready (%s); its output "
                     "is above", z->generation, how);
        log_event(LOG_ERROR, "zygote_failed", 0, z->pid, "%s", reason);
        if (next)
            env->events.reload_failed(reason, env->events.data);
        fork_server_fail_queue(server, reason, !term_signal && exit_status ? 3 : 0);
        if (current || !server->current)
            zygote_schedule_restart(server);
    } else {
        log_event(LOG_WARNING, "zygote_died", 0, z->pid, "the zygote of generation %u died (%s); its workers keep serving",
                  z->generation, how);
        if (current)
            zygote_schedule_restart(server);
    }
    zygote_close(z);
    env->events.changed(env->events.data);
    if (!server->stopping)
        fork_server_pump(server);
}

static struct zygote_events fork_server_zygote_events(struct fork_server *server) {
    return (struct zygote_events){.ready = fork_server_on_zygote_ready, .answer = fork_server_on_fork_answer,
                                  .exited = fork_server_on_zygote_exit, .data = server};
}

/* A zygote for generation: NULL when it could not be started (logged) or died at once. */
static struct zygote *fork_server_start_zygote(struct fork_server *server, unsigned generation) {
    const struct spawner_env *senv = server_env(server);
    struct launch_numbers numbers;
    char **argv = launch_argv(&senv->launch, &numbers, true, 0);
    char **env = launch_env(&senv->launch, 0, generation, 0, 0);
    char err[400];
    struct zygote *z = NULL;
    if (!argv || !env)
        log_error("zygote_start_failed", "out of memory preparing the zygote");
    else if (!(z = zygote_start(senv->loop, senv->reaper, senv->config->chdir, generation, argv, env,
                                fork_server_zygote_events(server), err, sizeof err)))
        log_error("zygote_start_failed", "cannot start the zygote: %s", err);
    free(argv);
    environment_free(env);
    if (!z)
        return NULL;
    server->live_zygotes++;
    log_event(LOG_INFO, "zygote_started", 0, z->pid, "zygote for generation %u is importing %s", generation,
              senv->config->app);
    return zygote_watch(z) ? NULL : z; /* NULL: it died already (fork_server_on_zygote_exit ran) */
}

static void zygote_on_restart_timer(uv_timer_t *timer) {
    struct fork_server *server = timer->data;
    if (server->stopping || server->current)
        return;
    server->zygote_restarts++;
    struct zygote *z = fork_server_start_zygote(server, *server_env(server)->generation);
    if (!z) {
        fork_server_fail_queue(server, "the zygote could not be started (see the log)", 0);
        zygote_schedule_restart(server);
        return;
    }
    if (!server->current)
        server->current = z; /* forks wait for it to be ready */
}

static void zygote_schedule_restart(struct fork_server *server) {
    if (server->stopping || uv_is_active((uv_handle_t *)&server->restart_timer))
        return;
    uint64_t delay = backoff_record_failure(&server->backoff, 0);
    log_info("zygote_restart", "restarting the zygote in %llu ms", (unsigned long long)delay);
    uv_timer_start(&server->restart_timer, zygote_on_restart_timer, delay, 0);
}

/* ---- forking ---- */

static void fork_server_on_fork_deadline(uv_timer_t *timer) {
    struct fork_server *server = timer->data;
    struct zygote *z = server->in_flight_zygote;
    if (!z)
        return;
    log_event(LOG_ERROR, "zygote_hung", 0, z->pid, "the zygote did not fork within %u ms; killing it", FORK_DEADLINE_MS);
    zygote_signal(z, SIGKILL);
}

/* The request line: the worker's numbers, and in "env" its ARBITER_* variables as launch.c computes
 * them (a value that is not UTF-8, a --log-file path or --user name, is left out: the zygote's own
 * environment, which the worker inherits, holds the same). NULL with err set. */
static char *fork_request_line(const struct fork_server *server, const struct zygote *z,
                               const struct fork_request *request, char *err, size_t err_size) {
    const struct worker *w = request->worker;
    char **vars = launch_variables(&server_env(server)->launch, w->slot_id, z->generation, request->listen_fd_count,
                                   request->board_index);
    json_t *env = json_object();
    for (char **p = vars; env && p && *p; p++) {
        char *eq = strchr(*p, '=');
        json_t *value = eq ? json_string(eq + 1) : NULL;
        if (value)
            json_object_setn_new(env, *p, (size_t)(eq - *p), value);
    }
    json_t *json = vars && env ? json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:i, s:O}", "type", "fork", "worker_id",
                                           (json_int_t)w->slot_id, "generation", (json_int_t)z->generation,
                                           "max_requests", (json_int_t)request->max_requests, "listen_fds",
                                           (json_int_t)request->listen_fd_count, "board_index",
                                           (json_int_t)request->board_index, "stdio",
                                           child_output_write_end(&w->child.output) >= 0, "env", env)
                               : NULL;
    char *line = json ? json_dumps(json, JSON_COMPACT) : NULL;
    environment_free(vars);
    json_decref(env);
    json_decref(json);
    if (!line) {
        snprintf(err, err_size, "out of memory preparing the fork request");
        return NULL;
    }
    if (strlen(line) + 1 > ZYGOTE_REQUEST_MAX) {
        snprintf(err, err_size, "the fork request is %zu bytes, more than the zygote reads (%u)", strlen(line) + 1,
                 ZYGOTE_REQUEST_MAX);
        free(line);
        return NULL;
    }
    return line;
}

static int fork_request_send(const struct fork_server *server, struct zygote *z, const struct fork_request *request,
                             char *err, size_t err_size) {
    const struct worker *w = request->worker;
    char *text = fork_request_line(server, z, request, err, err_size);
    if (!text)
        return -1;
    size_t length = strlen(text);
    text[length++] = '\n'; /* json_dumps' NUL becomes the line end */
    int fds[3 + LISTENER_MAX];
    size_t count = 0;
    fds[count++] = request->channel_fd;
    for (size_t i = 0; i < request->listen_fd_count; i++)
        fds[count++] = request->listen_fds[i];
    if (request->board_index)
        fds[count++] = request->board_fd;
    /* Last, flagged by "stdio": the worker's stdout and stderr (child_output.c); the zygote's child
     * puts it on fds 1 and 2. */
    if (child_output_write_end(&w->child.output) >= 0)
        fds[count++] = child_output_write_end(&w->child.output);
    union {
        char buffer[CMSG_SPACE(sizeof fds)];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct iovec iov = {.iov_base = text, .iov_len = length};
    struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buffer,
                             .msg_controllen = CMSG_SPACE(count * sizeof(int))};
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&message);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(count * sizeof(int));
    memcpy(CMSG_DATA(cmsg), fds, count * sizeof(int));
    ssize_t sent;
    do
        sent = sendmsg(z->child.channel_fd, &message, MSG_NOSIGNAL);
    while (sent < 0 && errno == EINTR);
    int send_errno = errno;
    free(text);
    if (sent < 0 || (size_t)sent != length) {
        snprintf(err, err_size, "cannot send the fork request to the zygote (pid %d): %s", z->pid,
                 sent < 0 ? strerror(send_errno) : "short write");
        return -1;
    }
    return 0;
}

/* Sends the next request when nothing is on the wire and the zygote that must fork it is ready:
 * during a reload that is the new generation's, otherwise the current one. */
static void fork_server_pump(struct fork_server *server) {
    while (!server->stopping && !server->in_flight && server->queue) {
        struct fork_request *request = server->queue;
        if (request->worker->stop_requested) {
            queue_pop(server);
            request_fail(request, "stopped before it was forked", 0);
            continue;
        }
        struct zygote *z = server->next ? server->next : server->current;
        if (!z || z->state != ZYGOTE_READY)
            return; /* fork_server_on_zygote_ready pumps again */
        queue_pop(server);
        char err[256];
        if (fork_request_send(server, z, request, err, sizeof err) != 0) {
            log_event(LOG_ERROR, "fork_request_failed", request->worker->slot_id, z->pid, "%s", err);
            request_fail(request, err, 0);
            continue;
        }
        close(request->channel_fd); /* the zygote has its own copy now */
        request->channel_fd = -1;
        child_output_close_write_end(&request->worker->child.output); /* as has it of the output pipe */
        server->in_flight = request;
        server->in_flight_zygote = z;
        uv_timer_start(&server->fork_deadline, fork_server_on_fork_deadline, FORK_DEADLINE_MS, 0);
    }
}

/* ---- the spawner ---- */

static int fork_server_start(struct spawner *spawner, char *err, size_t err_size) {
    struct fork_server *server = server_of(spawner);
    server->current = fork_server_start_zygote(server, *server_env(server)->generation);
    if (!server->current && !server->stopping) {
        snprintf(err, err_size, "cannot start the zygote for --preload (see the message above)");
        return -1;
    }
    return 0;
}

static int fork_server_spawn(struct spawner *spawner, struct worker *w, const struct worker_launch *launch, char *err,
                             size_t err_size) {
    struct fork_server *server = server_of(spawner);
    if (server->stopping) {
        snprintf(err, err_size, "the arbiter is stopping");
        return -1;
    }
    struct fork_request *request = calloc(1, sizeof *request);
    int peer_fd;
    if (!request) {
        snprintf(err, err_size, "out of memory preparing a fork request");
        return -1;
    }
    if (worker_open_pair(w, &peer_fd, err, err_size) != 0) {
        free(request);
        return -1;
    }
    request->worker = w;
    request->channel_fd = peer_fd;
    request->listen_fd_count = launch->listen_fd_count;
    memcpy(request->listen_fds, launch->listen_fds, launch->listen_fd_count * sizeof(int));
    request->max_requests = launch->max_requests;
    request->board_fd = launch->board_fd;
    request->board_index = launch->board_index;
    *server->queue_tail = request;
    server->queue_tail = &request->next;
    if (!server->current && !server->next)
        zygote_schedule_restart(server);
    fork_server_pump(server);
    return 0;
}

static void fork_server_reload(struct spawner *spawner, unsigned generation) {
    struct fork_server *server = server_of(spawner);
    if (server->next) /* a newer reload supersedes one still importing */
        zygote_retire(server, server->next);
    server->next = fork_server_start_zygote(server, generation);
    if (!server->next)
        server_env(server)->events.reload_failed("the zygote for the new code could not be started (see the log)",
                                                 server_env(server)->events.data);
}

static void fork_server_stop(struct spawner *spawner) {
    struct fork_server *server = server_of(spawner);
    server->stopping = true;
    uv_timer_stop(&server->restart_timer);
    fork_server_fail_queue(server, "the arbiter is stopping", 0);
    struct zygote *zygotes[] = {server->current, server->next};
    for (size_t i = 0; i < 2; i++)
        if (zygotes[i])
            zygote_retire(server, zygotes[i]);
}

static unsigned fork_server_live(const struct spawner *spawner) {
    const struct fork_server *server = (const struct fork_server *)((const char *)spawner - offsetof(struct fork_server, spawner));
    return server->live_zygotes;
}

static void fork_server_close(struct spawner *spawner) {
    struct fork_server *server = server_of(spawner);
    uv_close((uv_handle_t *)&server->restart_timer, NULL); /* embedded in struct arbiter */
    uv_close((uv_handle_t *)&server->fork_deadline, NULL);
}

static const struct spawner_ops fork_server_ops = {
    .name = "fork",
    .start = fork_server_start,
    .spawn = fork_server_spawn,
    .reload = fork_server_reload,
    .stop = fork_server_stop,
    .live = fork_server_live,
    .close = fork_server_close,
};

void fork_server_init(struct fork_server *server, uv_loop_t *loop) {
    memset(server, 0, sizeof *server);
    server->spawner = (struct spawner){.ops = &fork_server_ops};
    server->queue_tail = &server->queue;
    uv_timer_init(loop, &server->restart_timer);
    uv_timer_init(loop, &server->fork_deadline);
    server->restart_timer.data = server;
    server->fork_deadline.data = server;
}

const struct zygote *fork_server_zygote(const struct fork_server *server) { return server->current; }

/* ---- in-place upgrade: the zygote handed from one arbiter image to the next ---- */

bool fork_server_busy(const struct fork_server *server) {
    return server->queue || server->in_flight || server->next || server->live_zygotes > (server->current ? 1u : 0u);
}

json_t *fork_server_save(const struct fork_server *server) {
    const struct zygote *z = server->current;
    json_t *saved = json_pack("{s:I, s:i}", "restarts", (json_int_t)server->zygote_restarts, "failures",
                              (int)server->backoff.failures);
    if (saved && z && z->state != ZYGOTE_EXITED)
        json_object_set_new(saved, "current", zygote_save(z));
    return saved;
}

int fork_server_restore(struct fork_server *server, json_t *saved, char *err, size_t err_size) {
    server->zygote_restarts = (uint64_t)json_integer_value(json_object_get(saved, "restarts"));
    server->backoff.failures = (unsigned)json_integer_value(json_object_get(saved, "failures"));
    json_t *current = json_object_get(saved, "current");
    if (!current)
        return 0; /* restarted by the first spawn that needs it */
    const struct spawner_env *env = server_env(server);
    struct zygote *z = zygote_restore(env->loop, env->reaper, current, fork_server_zygote_events(server), err, err_size);
    if (!z)
        return -1;
    server->current = z;
    server->live_zygotes = 1;
    return 0;
}

/* After a log rotation: the zygote's stdout and stderr (which the workers it forks inherit) move to
 * the new file too. The message carries its fd, so the zygote reads it on its own, between forks. */
void fork_server_send_log_file(struct fork_server *server) {
    struct zygote *zygotes[] = {server->current, server->next};
    for (size_t i = 0; i < 2; i++) {
        char err[256];
        if (zygotes[i] && zygotes[i]->state != ZYGOTE_EXITED && child_output_fd(&zygotes[i]->child.output) < 0 &&
            log_send_file(zygotes[i]->child.channel_fd, err, sizeof err) != 0)
            log_event(LOG_WARNING, "reopen_logs_failed", 0, zygotes[i]->pid, "zygote: %s; it keeps the old file", err);
    }
}
