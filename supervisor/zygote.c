/* zygote.c - the zygote process (--preload): its spawn, its channel's messages, its exit.
 *
 * gunicorn's --preload imports the app in the master and forks workers from it, so the master runs
 * app code and can never load new code. Here the app is imported by a zygote, a child of the
 * arbiter running the shim in zygote mode: it imports the app (no event loop, no lifespan, no
 * threads), gc.collect()s and gc.freeze()s so collections in the workers never write to the shared
 * pages, then forks one worker per request (fork_server.c sends them). Its process is a struct
 * child (child.h); this file reads what it says ({"type":"zygote_ready"}, "forked", "fork_failed",
 * "zygote_refused") and hands it to its owner through struct zygote_events. */
#define _GNU_SOURCE
#include "zygote.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

const char *zygote_state_name(enum zygote_state state) {
    static const char *const names[] = {"importing", "ready", "exited"};
    return state <= ZYGOTE_EXITED ? names[state] : "invalid";
}

void zygote_close(struct zygote *z) { child_close(&z->child); /* frees z once its handles are closed */ }

void zygote_signal(struct zygote *z, int signum) {
    if (z->state != ZYGOTE_EXITED && z->pid > 0 && kill(z->pid, signum) != 0 && errno != ESRCH)
        log_error("zygote_kill_failed", "cannot send signal %d to the zygote (pid %d): %s", signum, z->pid,
                  strerror(errno));
}

static void zygote_on_ready(struct zygote *z, json_t *message) {
    if (z->state != ZYGOTE_IMPORTING)
        return;
    z->state = ZYGOTE_READY;
    z->ready_ms = uv_now(z->child.loop);
    json_t *seconds = json_object_get(message, "import_seconds");
    z->import_seconds = json_is_number(seconds) ? json_number_value(seconds) : (double)(z->ready_ms - z->started_ms) / 1000;
    procstat_read(z->pid, &z->stats);
    log_event(LOG_INFO, "zygote_ready", 0, z->pid, "zygote for generation %u ready: app imported in %.2f s, %.1f MiB PSS",
              z->generation, z->import_seconds, (double)z->stats.pss_bytes / 1048576);
    z->events.ready(z, z->events.data);
}

static void zygote_handle_message(struct zygote *z, const char *line, size_t length) {
    json_error_t error;
    json_t *message = json_loadb(line, length, 0, &error);
    const char *type = json_string_value(json_object_get(message, "type"));
    if (!type) {
        log_event(LOG_WARNING, "zygote_bad_message", 0, z->pid, "ignoring a channel line that is not a JSON object with a \"type\"");
    } else if (strcmp(type, "zygote_ready") == 0) {
        zygote_on_ready(z, message);
    } else if (strcmp(type, "forked") == 0) {
        json_int_t pid = json_integer_value(json_object_get(message, "pid"));
        z->events.answer(z, pid > 0 && pid < INT32_MAX ? (int)pid : -1, "the zygote reported no pid",
                         json_object_get(message, "fds"), z->events.data);
    } else if (strcmp(type, "fork_failed") == 0) {
        z->events.answer(z, -1, json_string_value(json_object_get(message, "error")), NULL, z->events.data);
    } else if (strcmp(type, "zygote_refused") == 0) {
        const char *summary = json_string_value(json_object_get(message, "summary"));
        if (!summary)
            summary = "no reason given";
        log_escape_excerpt(z->refusal, sizeof z->refusal, summary, strlen(summary));
    } /* hello and anything newer: nothing to do */
    json_decref(message);
}

static struct zygote *zygote_of(struct child *child) { return child->data; }

static void zygote_on_child_line(struct child *child, const char *line, size_t length) {
    zygote_handle_message(zygote_of(child), line, length);
}

static void zygote_on_child_exit(struct child *child, int64_t exit_status, int term_signal) {
    struct zygote *z = zygote_of(child);
    bool was_ready = z->state == ZYGOTE_READY;
    z->exit_status = exit_status;
    z->term_signal = term_signal;
    z->state = ZYGOTE_EXITED;
    z->events.exited(z, was_ready, z->events.data);
}

static void zygote_on_child_closed(struct child *child) { free(zygote_of(child)); }

static const struct child_ops zygote_child_ops = {
    .kind = "zygote",
    .line = zygote_on_child_line,
    .exited = zygote_on_child_exit,
    .closed = zygote_on_child_closed,
};

static struct zygote *zygote_new(uv_loop_t *loop, struct reaper *reaper, unsigned generation,
                                 struct zygote_events events) {
    struct zygote *z = calloc(1, sizeof *z);
    if (!z)
        return NULL;
    z->events = events;
    z->generation = generation;
    child_init(&z->child, &zygote_child_ops, z, loop, reaper, 0);
    return z;
}

struct zygote *zygote_start(uv_loop_t *loop, struct reaper *reaper, const char *cwd, unsigned generation, char **argv,
                            char **env, struct zygote_events events, char *err, size_t err_size) {
    struct zygote *z = zygote_new(loop, reaper, generation, events);
    if (!z) {
        snprintf(err, err_size, "out of memory preparing the zygote");
        return NULL;
    }
    int peer_fd;
    int pid = -1;
    if (child_open_pair(&z->child, true, &peer_fd, err, err_size) == 0) {
        /* its channel on fd 3; its output logged */
        struct child_spec spec = {.argv = argv, .env = env, .cwd = cwd, .output = true, .channel_at = 0};
        pid = child_spawn(&z->child, &spec, peer_fd, err, err_size);
    }
    if (pid < 0) {
        zygote_close(z);
        return NULL;
    }
    z->state = ZYGOTE_IMPORTING;
    z->pid = pid;
    z->started_ms = uv_now(loop);
    return z;
}

bool zygote_watch(struct zygote *z) { return child_started(&z->child, z->pid); }

/* ---- in-place upgrade: the zygote handed from one arbiter image to the next ---- */

json_t *zygote_save(const struct zygote *z) {
    json_t *saved = json_pack("{s:i, s:i, s:i, s:s, s:f, s:I, s:I, s:I}", "pid", z->pid, "channel_fd",
                              z->child.channel_fd, "generation", (int)z->generation, "state", zygote_state_name(z->state),
                              "import_seconds", z->import_seconds, "forks", (json_int_t)z->forks, "started_ms",
                              (json_int_t)z->started_ms, "ready_ms", (json_int_t)z->ready_ms);
    if (saved && child_output_fd(&z->child.output) >= 0)
        json_object_set_new(saved, "output_fd", json_integer(child_output_fd(&z->child.output)));
    return saved;
}

struct zygote *zygote_restore(uv_loop_t *loop, struct reaper *reaper, json_t *saved, struct zygote_events events,
                              char *err, size_t err_size) {
    json_int_t pid = 0, fd = -1, generation = 0, forks = 0, started = 0, ready = 0;
    double import_seconds = 0;
    const char *state = NULL;
    json_error_t error;
    if (json_unpack_ex(saved, &error, 0, "{s:I, s:I, s:I, s:s, s:F, s:I, s:I, s:I}", "pid", &pid, "channel_fd", &fd,
                       "generation", &generation, "state", &state, "import_seconds", &import_seconds, "forks", &forks,
                       "started_ms", &started, "ready_ms", &ready) != 0 ||
        pid <= 0 || fd < 0) {
        snprintf(err, err_size, "the zygote in the upgrade state is malformed: %s", error.text);
        return NULL;
    }
    struct zygote *z = zygote_new(loop, reaper, (unsigned)generation, events);
    if (!z) {
        snprintf(err, err_size, "out of memory adopting the zygote");
        return NULL;
    }
    z->pid = (int)pid;
    z->state = state && strcmp(state, "ready") == 0 ? ZYGOTE_READY : ZYGOTE_IMPORTING;
    z->import_seconds = import_seconds;
    z->forks = (uint64_t)forks;
    z->started_ms = (uint64_t)started;
    z->ready_ms = (uint64_t)ready;
    json_t *output_fd = json_object_get(saved, "output_fd");
    if (child_adopt(&z->child, (int)pid, (int)fd, output_fd ? (int)json_integer_value(output_fd) : -1, err,
                    err_size) != 0) {
        zygote_close(z);
        return NULL;
    }
    procstat_read(z->pid, &z->stats);
    return z;
}
