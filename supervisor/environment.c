/* environment.c - a worker's environment.
 *
 * Workers must not see what systemd handed to the arbiter: with NOTIFY_SOCKET a worker's library
 * could tell systemd READY=1 on the arbiter's behalf, with LISTEN_FDS it could try to adopt fds it
 * does not have, with WATCHDOG_USEC it could ping the watchdog for a hung arbiter. Stale ARBITER_*
 * values (an arbiter started from inside a worker, a test) are replaced by this worker's own. */
#define _GNU_SOURCE
#include "environment.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handshake.h"

static const char *const dropped_prefixes[] = {
    "NOTIFY_SOCKET=", "WATCHDOG_PID=", "WATCHDOG_USEC=", "LISTEN_PID=", "LISTEN_FDS=", "LISTEN_FDNAMES=", "ARBITER_",
};

static bool is_dropped(const char *entry) {
    for (size_t i = 0; i < sizeof dropped_prefixes / sizeof dropped_prefixes[0]; i++)
        if (strncmp(entry, dropped_prefixes[i], strlen(dropped_prefixes[i])) == 0)
            return true;
    return false;
}

static size_t name_length(const char *entry) {
    const char *eq = strchr(entry, '=');
    return eq ? (size_t)(eq - entry) : strlen(entry);
}

/* An entry without '=' (execve allows one) has no value: NULL, not a pointer past its end. */
const char *environment_get(char *const *env, const char *name) {
    size_t len = strlen(name);
    for (; env && *env; env++)
        if (strncmp(*env, name, len) == 0 && (*env)[len] == '=')
            return *env + len + 1;
    return NULL;
}

struct env_builder {
    char **items;
    size_t count;
    size_t capacity;
    bool failed;
};

/* Sets NAME=VALUE given as one string, replacing an earlier entry with the same name. */
static void builder_put(struct env_builder *b, const char *entry) {
    if (b->failed)
        return;
    size_t len = name_length(entry);
    char *copy = strdup(entry);
    if (!copy) {
        b->failed = true;
        return;
    }
    for (size_t i = 0; i < b->count; i++) {
        if (name_length(b->items[i]) == len && strncmp(b->items[i], entry, len) == 0) {
            free(b->items[i]);
            b->items[i] = copy;
            return;
        }
    }
    if (b->count + 1 >= b->capacity) {
        size_t capacity = b->capacity ? b->capacity * 2 : 64;
        char **items = realloc(b->items, capacity * sizeof *items);
        if (!items) {
            free(copy);
            b->failed = true;
            return;
        }
        b->items = items;
        b->capacity = capacity;
    }
    b->items[b->count++] = copy;
    b->items[b->count] = NULL;
}

static void builder_putf(struct env_builder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void builder_putf(struct env_builder *b, const char *fmt, ...) {
    char entry[8192];
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(entry, sizeof entry, fmt, args);
    va_end(args);
    if (n < 0 || (size_t)n >= sizeof entry) {
        b->failed = true;
        return;
    }
    builder_put(b, entry);
}

char **environment_build(char *const *base, char *const *extra, size_t extra_count, const struct worker_identity *id) {
    struct env_builder b = {0};
    for (; base && *base; base++)
        if (!is_dropped(*base))
            builder_put(&b, *base);
    for (size_t i = 0; extra && i < extra_count; i++)
        if (!is_dropped(extra[i]))
            builder_put(&b, extra[i]);
    if (id->shim_dir) {
        const char *existing = environment_get(b.items, "PYTHONPATH");
        if (existing && *existing)
            builder_putf(&b, "PYTHONPATH=%s:%s", id->shim_dir, existing);
        else
            builder_putf(&b, "PYTHONPATH=%s", id->shim_dir);
    }
    if (!environment_get(b.items, "PYTHONUNBUFFERED"))
        builder_put(&b, "PYTHONUNBUFFERED=1"); /* logs reach the journal as they happen */
    builder_putf(&b, "ARBITER_LISTEN_FDS=%zu", id->listen_fds);
    builder_putf(&b, "ARBITER_CHANNEL_FD=%zu", 3 + id->listen_fds);
    builder_putf(&b, "ARBITER_PID=%d", id->arbiter_pid);
    builder_putf(&b, "ARBITER_WORKER_ID=%u", id->worker_id);
    builder_putf(&b, "ARBITER_GENERATION=%u", id->generation);
    builder_putf(&b, "ARBITER_HEARTBEAT_INTERVAL=%.3f", id->heartbeat_interval);
    builder_putf(&b, "ARBITER_LOG_FORMAT=%s", id->log_format);
    builder_putf(&b, "ARBITER_PROTOCOL=%d", ARBITER_CHANNEL_PROTOCOL);
    if (id->log_file)
        builder_putf(&b, "ARBITER_LOG_FILE=%s", id->log_file);
    if (id->balance)
        builder_putf(&b, "ARBITER_BALANCE=%s", id->balance);
    if (id->board_index) {
        builder_putf(&b, "ARBITER_BOARD_FD=%zu", 4 + id->listen_fds);
        builder_putf(&b, "ARBITER_BOARD_INDEX=%u", id->board_index);
    }
    if (id->set_uid)
        builder_putf(&b, "ARBITER_UID=%u", id->uid);
    if (id->set_gid)
        builder_putf(&b, "ARBITER_GID=%u", id->gid);
    if (id->user)
        builder_putf(&b, "ARBITER_USER=%s", id->user);
    if (b.failed || !b.items) {
        environment_free(b.items);
        return NULL;
    }
    return b.items;
}

void environment_free(char **env) {
    for (char **p = env; p && *p; p++)
        free(*p);
    free(env);
}
