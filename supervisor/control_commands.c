/* control_commands.c - the control commands: one row each in command_table.
 *
 * A row names the command, the permission it needs, how its fields are validated (parse), what it
 * does (run) and, for commands that change the pool, when it is complete (done). The server in
 * control.c knows nothing about individual commands, so adding one is adding a row and its
 * functions here, and a line in the protocol comment of control.h. Parsing is pure and shared with
 * the unit tests and the fuzzer. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control_commands.h"

#include "arbiter.h"
#include "status_json.h"
#include "version.h"
#include "log.h"

static void set_error(struct control_error *error, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_error(struct control_error *error, const char *code, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    error->code = code;
    vsnprintf(error->message, sizeof error->message, fmt, args);
    va_end(args);
}

json_t *control_error_reply(const struct control_error *error) {
    return json_pack("{s:b, s:{s:s, s:s}}", "ok", 0, "error", "code", error->code, "message", error->message);
}

/* ---- field helpers ---- */

static int get_integer(json_t *json, const char *field, bool *present, long long *value, struct control_error *error) {
    json_t *v = json_object_get(json, field);
    *present = v != NULL;
    if (!v)
        return 0;
    if (!json_is_integer(v)) {
        set_error(error, "bad_request", "\"%s\" must be an integer", field);
        return -1;
    }
    *value = json_integer_value(v);
    return 0;
}

static int get_bool(json_t *json, const char *field, bool *value, struct control_error *error) {
    json_t *v = json_object_get(json, field);
    if (!v)
        return 0;
    if (!json_is_boolean(v)) {
        set_error(error, "bad_request", "\"%s\" must be true or false", field);
        return -1;
    }
    *value = json_is_true(v);
    return 0;
}

static enum control_outcome status_run(struct arbiter *a, struct control_request *r, json_t **reply,
                                       struct control_error *error) {
    (void)r, (void)error;
    *reply = status_json(&a->sources, &a->autoscale);
    return CONTROL_DONE;
}

/* ---- scale ---- */

static int scale_parse(json_t *json, struct control_request *r, struct control_error *error) {
    if (get_integer(json, "workers", &r->has_workers, &r->workers, error) != 0 ||
        get_integer(json, "delta", &r->has_delta, &r->delta, error) != 0)
        return -1;
    if (r->has_workers == r->has_delta) {
        set_error(error, "invalid_argument", "scale takes either \"workers\": N or \"delta\": +N/-N");
        return -1;
    }
    if (r->has_workers && r->workers < 1) {
        set_error(error, "out_of_range", "scale to %lld workers: at least 1 is needed; use stop to stop", r->workers);
        return -1;
    }
    if (r->has_workers && r->workers > CONFIG_MAX_WORKERS_LIMIT) {
        set_error(error, "out_of_range", "\"workers\" must be from 1 to %d (and at most --max-workers)",
                  CONFIG_MAX_WORKERS_LIMIT);
        return -1;
    }
    /* Bounded here so that target + delta can never overflow; run() checks the resulting count. */
    if (r->has_delta && (r->delta < -CONFIG_MAX_WORKERS_LIMIT || r->delta > CONFIG_MAX_WORKERS_LIMIT)) {
        set_error(error, "out_of_range", "\"delta\" must be from -%d to +%d", CONFIG_MAX_WORKERS_LIMIT,
                  CONFIG_MAX_WORKERS_LIMIT);
        return -1;
    }
    return 0;
}

static enum control_outcome scale_done(struct arbiter *a, const struct control_request *r, json_t **reply,
                                       struct control_error *error) {
    const struct pool *pool = &a->pool;
    if (pool->target != r->mark) { /* another scale (ctl, a signal, the autoscaler) changed the target */
        set_error(error, "overtaken", "scale to %llu workers was overtaken: the target is now %u (another scale "
                  "changed it); %u workers ready", (unsigned long long)r->mark, pool->target, pool_ready_count(pool));
        return CONTROL_FAILED;
    }
    if (pool_ready_count(pool) != pool->target || pool_live_count(pool) != pool->target)
        return CONTROL_WAIT;
    *reply = json_pack("{s:b, s:i, s:i}", "ok", 1, "target_workers", (int)pool->target, "ready_workers",
                       (int)pool_ready_count(pool));
    return CONTROL_DONE;
}

static enum control_outcome scale_run(struct arbiter *a, struct control_request *r, json_t **reply,
                                      struct control_error *error) {
    long long target = r->has_workers ? r->workers : (long long)a->pool.target + r->delta;
    if (target < 1 || target > a->config->max_workers) {
        set_error(error, "out_of_range", "cannot scale to %lld workers: the range is 1 to %u (--max-workers)", target,
                  a->config->max_workers);
        return CONTROL_FAILED;
    }
    if (a->state == ARBITER_STOPPING || a->state == ARBITER_STARTING) {
        set_error(error, "not_running", "the arbiter is %s; try again when it is running", arbiter_state_name(a));
        return CONTROL_FAILED;
    }
    r->mark = (uint64_t)target; /* what scale_done holds the pool to */
    if (arbiter_scale(a, (unsigned)target, "control command") != 0) {
        set_error(error, "failed", "could not scale to %lld workers; see the log", target);
        return CONTROL_FAILED;
    }
    if (r->wait)
        return scale_done(a, r, reply, error);
    *reply = json_pack("{s:b, s:i}", "ok", 1, "target_workers", (int)target);
    return CONTROL_DONE;
}

/* ---- reload ---- */

static enum control_outcome reload_done(struct arbiter *a, const struct control_request *r, json_t **reply,
                                        struct control_error *error) {
    /* Complete means the old workers have drained and exited too, so ExecReload= returns when the
     * previous generation is gone. A later reload supersedes this one: its outcome is the answer. */
    const struct reload *reload = &a->pool.reload;
    if (a->state == ARBITER_STOPPING) {
        set_error(error, "not_running", "the arbiter is stopping; the reload was abandoned");
        return CONTROL_FAILED;
    }
    if (reload->queued || reload->id < r->mark || reload_running(reload) || a->pool.draining)
        return CONTROL_WAIT;
    if (reload->state == RELOAD_FAILED) {
        set_error(error, "failed", "the reload failed: %s; the old workers keep serving. See the arbiter's log for "
                                   "the traceback", reload->failure);
        return CONTROL_FAILED;
    }
    *reply = json_pack("{s:b, s:i}", "ok", 1, "generation", (int)a->pool.generation);
    return CONTROL_DONE;
}

static enum control_outcome reload_run(struct arbiter *a, struct control_request *r, json_t **reply,
                                       struct control_error *error) {
    if (a->state == ARBITER_STOPPING) {
        set_error(error, "not_running", "the arbiter is stopping; nothing to reload");
        return CONTROL_FAILED;
    }
    arbiter_reload(a, "control command");
    /* The id of the reload this request is part of: a new one, the running one it joined, or the one
     * that runs once the start finishes. */
    r->mark = a->pool.reload.queued ? a->pool.reload.id + 1 : a->pool.reload.id;
    if (!r->wait) {
        *reply = json_pack("{s:b, s:i}", "ok", 1, "generation", (int)a->pool.generation);
        return CONTROL_DONE;
    }
    return reload_done(a, r, reply, error);
}

/* ---- recycle ---- */

static int recycle_parse(json_t *json, struct control_request *r, struct control_error *error) {
    bool present;
    if (get_integer(json, "id", &present, &r->id, error) != 0)
        return -1;
    if (!present) {
        set_error(error, "invalid_argument", "recycle needs \"id\": the worker id shown by status");
        return -1;
    }
    if (r->id < 1 || r->id > CONFIG_MAX_WORKERS_LIMIT) {
        set_error(error, "out_of_range", "\"id\" must be from 1 to %d: a worker id shown by status", CONFIG_MAX_WORKERS_LIMIT);
        return -1;
    }
    return 0;
}

static enum control_outcome recycle_done(struct arbiter *a, const struct control_request *r, json_t **reply,
                                         struct control_error *error) {
    const struct slot *slot = pool_find_slot(&a->pool, (unsigned)r->id);
    if (!slot) {
        set_error(error, "failed", "worker %lld went away (scaled down?) before its replacement was ready", r->id);
        return CONTROL_FAILED;
    }
    if (a->pool.replace_failures != r->mark) {
        set_error(error, "failed", "the replacement for worker %lld failed to boot; the old worker keeps serving", r->id);
        return CONTROL_FAILED;
    }
    if (slot->successor || slot->replace_pending || !slot->active || slot->active->state != WORKER_READY)
        return CONTROL_WAIT;
    for (const struct worker *w = a->pool.draining; w; w = w->next)
        if (w->pid == r->old_pid)
            return CONTROL_WAIT; /* complete once the old worker has drained and exited */
    *reply = json_pack("{s:b, s:I, s:i}", "ok", 1, "id", (json_int_t)r->id, "pid", slot->active->pid);
    return CONTROL_DONE;
}

static enum control_outcome recycle_run(struct arbiter *a, struct control_request *r, json_t **reply,
                                        struct control_error *error) {
    if (a->state == ARBITER_STOPPING) {
        set_error(error, "not_running", "the arbiter is stopping");
        return CONTROL_FAILED;
    }
    const struct slot *slot = pool_find_slot(&a->pool, (unsigned)r->id);
    if (!slot || !slot->active) {
        set_error(error, "no_such_worker", "no running worker with id %lld; `arbiter ctl status` lists them", r->id);
        return CONTROL_FAILED;
    }
    r->mark = a->pool.replace_failures;
    r->old_pid = slot->active->pid;
    log_info("recycle", "recycling worker %lld (pid %d) on request", r->id, r->old_pid);
    pool_recycle(&a->pool, (unsigned)r->id);
    if (!r->wait) {
        *reply = json_pack("{s:b, s:I}", "ok", 1, "id", (json_int_t)r->id);
        return CONTROL_DONE;
    }
    return recycle_done(a, r, reply, error);
}

/* ---- autoscale ---- */

static int autoscale_parse(json_t *json, struct control_request *r, struct control_error *error) {
    bool has_min, has_max, enabled = true;
    if (get_integer(json, "min", &has_min, &r->autoscale_min, error) != 0 ||
        get_integer(json, "max", &has_max, &r->autoscale_max, error) != 0 || get_bool(json, "enabled", &enabled, error) != 0)
        return -1;
    r->autoscale_off = !enabled;
    r->has_range = has_min && has_max;
    if (r->autoscale_off == r->has_range || has_min != has_max) {
        set_error(error, "invalid_argument", "autoscale takes \"min\" and \"max\" (e.g. {\"cmd\":\"autoscale\",\"min\":2,"
                                             "\"max\":8}) or \"enabled\": false");
        return -1;
    }
    if (r->has_range && (r->autoscale_min < 1 || r->autoscale_min > r->autoscale_max)) {
        set_error(error, "out_of_range", "autoscale %lld:%lld: MIN must be at least 1 and at most MAX", r->autoscale_min,
                  r->autoscale_max);
        return -1;
    }
    return 0;
}

static enum control_outcome autoscale_run(struct arbiter *a, struct control_request *r, json_t **reply,
                                          struct control_error *error) {
    if (a->state == ARBITER_STOPPING) {
        set_error(error, "not_running", "the arbiter is stopping");
        return CONTROL_FAILED;
    }
    if (r->has_range && r->autoscale_max > a->config->max_workers) {
        set_error(error, "out_of_range", "autoscale %lld:%lld: MAX is more than --max-workers %u", r->autoscale_min,
                  r->autoscale_max, a->config->max_workers);
        return CONTROL_FAILED;
    }
    if (r->autoscale_off)
        autoscale_disable(&a->autoscale, "control command");
    else
        autoscale_enable(&a->autoscale, (unsigned)r->autoscale_min, (unsigned)r->autoscale_max, "control command");
    *reply = json_pack("{s:b, s:o}", "ok", 1, "autoscale", autoscale_json(&a->autoscale));
    return CONTROL_DONE;
}

/* ---- stop ---- */

static int stop_parse(json_t *json, struct control_request *r, struct control_error *error) {
    return get_bool(json, "quick", &r->quick, error);
}

static enum control_outcome stop_run(struct arbiter *a, struct control_request *r, json_t **reply,
                                     struct control_error *error) {
    (void)error;
    *reply = json_pack("{s:b, s:i}", "ok", 1, "pid", (int)getpid());
    arbiter_stop(a, !r->quick, "control command");
    return CONTROL_DONE;
}

/* ---- upgrade ---- */

static enum control_outcome upgrade_done(struct arbiter *a, const struct control_request *r, json_t **reply,
                                         struct control_error *error) {
    const struct upgrade *u = &a->upgrade;
    if (u->failed > r->mark) {
        set_error(error, "failed", "%s", u->failure);
        return CONTROL_FAILED;
    }
    if (u->phase != UPGRADE_EXEC_PENDING)
        return CONTROL_WAIT;
    *reply = json_pack("{s:b, s:i, s:i, s:s, s:s}", "ok", 1, "pid", (int)getpid(), "upgrades", (int)u->upgrades,
                       "version", ARBITER_VERSION, "build", u->build);
    return CONTROL_DONE;
}

static enum control_outcome upgrade_run(struct arbiter *a, struct control_request *r, json_t **reply,
                                        struct control_error *error) {
    char err[512];
    r->mark = a->upgrade.failed;
    if (upgrade_request(&a->upgrade, "control command", err, sizeof err) != 0) {
        set_error(error, upgrade_in_progress(&a->upgrade) || strstr(err, "cannot upgrade now") ? "busy_upgrading" : "failed",
                  "%s", err);
        return CONTROL_FAILED;
    }
    return upgrade_done(a, r, reply, error);
}

/* ---- health ---- */

static int health_parse(json_t *json, struct control_request *r, struct control_error *error) {
    if (get_bool(json, "live", &r->live, error) != 0 || get_bool(json, "all", &r->all, error) != 0)
        return -1;
    if (r->live && r->all) {
        set_error(error, "invalid_argument", "health takes \"live\" or \"all\", not both");
        return -1;
    }
    return 0;
}

static enum control_outcome health_run(struct arbiter *a, struct control_request *r, json_t **reply,
                                       struct control_error *error) {
    unsigned ready = pool_ready_count(&a->pool);
    char reason[192];
    if (r->live) {
        /* Answering at all proves the event loop turns. A drain, a reload or a crashlooping worker
         * is the arbiter's own business: restarting the container would only cut the drain short. */
        snprintf(reason, sizeof reason, "alive: %s, %u/%u workers ready", arbiter_state_name(a), ready,
                 a->pool.target);
    } else if (status_health(&a->sources, reason, sizeof reason) != 200) {
        set_error(error, "unhealthy", "%s", reason); /* the same answer as /healthz */
        return CONTROL_FAILED;
    } else if (r->all && ready < a->pool.target) {
        set_error(error, "unhealthy", "%u/%u workers ready, not all of them", ready, a->pool.target);
        return CONTROL_FAILED;
    }
    *reply = json_pack("{s:b, s:s, s:s, s:i, s:i, s:i}", "ok", 1, "state", arbiter_state_name(a), "reason",
                       reason, "ready_workers", (int)ready, "target_workers", (int)a->pool.target, "min_ready",
                       (int)a->config->min_ready);
    return CONTROL_DONE;
}

static const struct control_command command_table[] = {
    {"status", CONTROL_READ, NULL, status_run, NULL, "show the workers"},
    {"scale", CONTROL_WRITE, scale_parse, scale_run, scale_done, "set the number of workers: N, +N or -N"},
    {"reload", CONTROL_WRITE, NULL, reload_run, reload_done, "replace every worker, overlapped"},
    {"recycle", CONTROL_WRITE, recycle_parse, recycle_run, recycle_done, "replace one worker, overlapped"},
    {"stop", CONTROL_WRITE, stop_parse, stop_run, NULL, "stop the arbiter, gracefully or quickly"},
    {"upgrade", CONTROL_WRITE, NULL, upgrade_run, upgrade_done, "re-execute the installed binary in place"},
    {"health", CONTROL_READ, health_parse, health_run, NULL, "is it serving (as /healthz), or alive at all (live)"},
    {"autoscale", CONTROL_WRITE, autoscale_parse, autoscale_run, NULL, "autoscale between MIN and MAX workers, or off"},
};

const struct control_command *control_find_command(const char *name) {
    for (size_t i = 0; i < sizeof command_table / sizeof command_table[0]; i++)
        if (strcmp(command_table[i].name, name) == 0)
            return &command_table[i];
    return NULL;
}

const char *control_command_names(void) {
    static char names[256];
    if (!names[0]) {
        size_t used = 0;
        for (size_t i = 0; i < sizeof command_table / sizeof command_table[0]; i++)
            used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", i ? "|" : "", command_table[i].name);
    }
    return names;
}

int control_parse_request(const char *line, size_t length, struct control_request *r, struct control_error *error) {
    memset(r, 0, sizeof *r);
    r->wait = true;
    r->timeout = CONTROL_DEFAULT_TIMEOUT_S;
    json_error_t json_error;
    json_t *json = json_loadb(line, length, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &json_error);
    if (!json) {
        /* jansson quotes the request near the error: raw bytes, maybe not UTF-8, which no JSON reply
         * could carry. Escaped, the reason is plain ASCII. */
        char reason[sizeof json_error.text];
        set_error(error, "bad_json", "the request is not JSON (%s at column %d); send one object per line, "
                                     "e.g. {\"cmd\":\"status\"}",
                  log_escape_excerpt(reason, sizeof reason, json_error.text, strlen(json_error.text)), json_error.column);
        return -1;
    }
    int rc = -1;
    const char *name = json_string_value(json_object_get(json, "cmd"));
    if (!json_is_object(json) || !name) {
        set_error(error, "bad_request", "the request must be an object with a \"cmd\" string, e.g. {\"cmd\":\"status\"}");
        goto out;
    }
    r->command = control_find_command(name);
    if (!r->command) {
        char shown[65]; /* cut at a whole character: a cut inside a UTF-8 sequence would make the reply unsendable */
        set_error(error, "unknown_command", "unknown command '%s'; valid commands: %s",
                  log_escape_excerpt(shown, sizeof shown, name, strlen(name)), control_command_names());
        goto out;
    }
    if (get_bool(json, "wait", &r->wait, error) != 0)
        goto out;
    json_t *timeout = json_object_get(json, "timeout");
    if (timeout) {
        double seconds = json_number_value(timeout);
        if (!json_is_number(timeout) || !isfinite(seconds) || seconds <= 0 || seconds > 86400) {
            set_error(error, "bad_request", "\"timeout\" must be a number of seconds above 0 and at most 86400");
            goto out;
        }
        r->timeout = seconds;
    }
    rc = r->command->parse ? r->command->parse(json, r, error) : 0;
out:
    json_decref(json);
    return rc;
}
