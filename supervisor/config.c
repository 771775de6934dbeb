/* config.c - flags, environment and --config file into one struct config.
 *
 * Every flag is one row of option_table: its name, its argument, how it is applied, whether it is
 * also passed to the workers (uvicorn's options), and its help line. Parsing (getopt_long), the
 * --config JSON file and --help are all generated from that table, so adding a flag is adding a row
 * (and a field in struct config when the arbiter itself uses the value).
 *
 * Precedence: built-in defaults < environment (WEB_CONCURRENCY, VIRTUAL_ENV, ARBITER_CONTROL)
 * < --config file < command line. A repeatable flag given on the command line replaces the file's
 * values instead of adding to them. */
#define _GNU_SOURCE
#include "config.h"
#include "environment.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STRING_LIST_MAX 4096
#define ENV_FILE_LINE_MAX 8192

struct option_spec;
static const struct option_spec *option_find(const char *name);
static int option_apply(struct config *c, const struct option_spec *o, const char *value, char *err, size_t n);
typedef int (*option_apply_fn)(struct config *, const struct option_spec *, const char *value,
                               char *err, size_t err_size);

enum option_flags {
    OPT_FORWARD = 1 << 0, /* also passed to every worker as --name [value] */
    OPT_REPEAT = 1 << 1,  /* may be given several times; values accumulate */
};

struct option_spec {
    const char *name;
    int short_name;
    const char *metavar; /* NULL: a flag without a value */
    option_apply_fn apply;
    size_t offset;       /* field of struct config the apply function writes */
    double min, max;     /* range for numbers */
    const char *choices; /* "a|b|c" for apply_choice; for apply_alias, the arbiter option it spells */
    unsigned flags;
    const char *help;
};

/* ---- apply functions: one per kind of value ---- */

static int parse_uint_option(const struct option_spec *o, const char *v, unsigned *out, char *err, size_t n) {
    char *end;
    errno = 0;
    unsigned long value = strtoul(v, &end, 10);
    if (errno || *end || !*v || !isdigit((unsigned char)v[0]) || value < o->min || value > o->max) {
        snprintf(err, n, "--%s: '%s' is not a whole number from %.0f to %.0f", o->name, v, o->min, o->max);
        return -1;
    }
    *out = (unsigned)value;
    return 0;
}

static int apply_uint(struct config *c, const struct option_spec *o, const char *v, char *err, size_t n) {
    return parse_uint_option(o, v, (unsigned *)((char *)c + o->offset), err, n);
}

static int apply_seconds(struct config *c, const struct option_spec *o, const char *v, char *err, size_t n) {
    double seconds;
    if (config_parse_seconds(v, &seconds) != 0 || seconds < o->min || seconds > o->max) {
        snprintf(err, n, "--%s: '%s' is not a duration from %.10g to %.10g seconds (e.g. 30, 2.5, 500ms, 2m)",
                 o->name, v, o->min, o->max);
        return -1;
    }
    *(double *)((char *)c + o->offset) = seconds;
    return 0;
}

static int apply_size(struct config *c, const struct option_spec *o, const char *v, char *err, size_t n) {
    uint64_t bytes;
    if (config_parse_size(v, &bytes) != 0 || (double)bytes < o->min || (double)bytes > o->max) {
        snprintf(err, n, "--%s: '%s' is not a size from %.0f to %.0fT (e.g. 512M, 2G, 1048576)", o->name, v, o->min,
                 o->max / 1099511627776.0);
        return -1;
    }
    *(uint64_t *)((char *)c + o->offset) = bytes;
    return 0;
}

static int apply_string(struct config *c, const struct option_spec *o, const char *v, char *err, size_t n);

/* "-" is stdout (containers collect it), any other value a file to append to. */
static int apply_log_file(struct config *c, const struct option_spec *o, const char *v, char *err, size_t n) {
    c->log_to_stdout = strcmp(v, "-") == 0;
    if (!c->log_to_stdout)
        return apply_string(c, o, v, err, n);
    free(c->log_file);
    c->log_file = NULL;
    return 0;
}

static int apply_string(struct config *c, const struct option_spec *o, const char *v, char *err, size_t n) {
    if (!*v) {
        snprintf(err, n, "--%s needs a non-empty value", o->name);
        return -1;
    }
    char **field = (char **)((char *)c + o->offset);
    char *copy = strdup(v);
    if (!copy) {
        snprintf(err, n, "out of memory");
        return -1;
    }
    free(*field);
    *field = copy;
    return 0;
}

static int apply_true(struct config *c, const struct option_spec *o, const char *v, char *err, size_t n) {
    (void)v, (void)err, (void)n;
    *(bool *)((char *)c + o->offset) = true;
    return 0;
}

static int apply_false(struct config *c, const struct option_spec *o, const char *v, char *err, size_t n) {
    (void)v, (void)err, (void)n;
    *(bool *)((char *)c + o->offset) = false;
    return 0;
}

static int apply_choice(struct config *c, const struct option_spec *o, const char *v, char *err, size_t n) {
    (void)c;
    size_t len = strlen(v);
    for (const char *p = o->choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t choice_len = bar ? (size_t)(bar - p) : strlen(p);
        if (choice_len == len && strncmp(p, v, len) == 0)
            return 0;
        p += choice_len + (bar ? 1 : 0);
    }
    snprintf(err, n, "--%s: '%s' is not one of %s", o->name, v, o->choices);
    return -1;
}

/* Values only the workers use: checked here, stored in the forwarded argv. */
static int apply_forward(struct config *c, const struct option_spec *o, const char *v, char *err, size_t n) {
    (void)c;
    if (o->metavar && !*v) {
        snprintf(err, n, "--%s needs a non-empty value", o->name);
        return -1;
    }
    return 0;
}

/* Numbers only the workers use: checked here, stored in the forwarded argv. */
static int apply_number_forward(struct config *c, const struct option_spec *o, const char *v, char *err, size_t n) {
    (void)c;
    unsigned ignored;
    return parse_uint_option(o, v, &ignored, err, n);
}

static int apply_octal_mode(struct config *c, const struct option_spec *o, const char *v, char *err, size_t n) {
    char *end;
    errno = 0;
    unsigned long mode = strtoul(v, &end, 8);
    if (errno || *end || !*v || !isdigit((unsigned char)v[0]) || mode < o->min || mode > o->max) {
        snprintf(err, n, "--%s: '%s' is not an octal file mode from %o to %o (e.g. 660)", o->name, v, (unsigned)o->min,
                 (unsigned)o->max);
        return -1;
    }
    *(unsigned *)((char *)c + o->offset) = (unsigned)mode;
    return 0;
}

static int apply_log_level(struct config *c, const struct option_spec *o, const char *v, char *err, size_t n) {
    if (log_level_parse(v, &c->log_level) != 0) {
        snprintf(err, n, "--%s: '%s' is not one of critical|error|warning|info|debug|trace", o->name, v);
        return -1;
    }
    return 0;
}

static int apply_log_format(struct config *c, const struct option_spec *o, const char *v, char *err, size_t n) {
    if (log_format_parse(v, &c->log_format) != 0) {
        snprintf(err, n, "--%s: '%s' is not one of text|json", o->name, v);
        return -1;
    }
    return 0;
}

static int apply_bind(struct config *c, const struct option_spec *o, const char *v, char *err, size_t n) {
    if (c->bind_count >= LISTENER_MAX) {
        snprintf(err, n, "--%s: at most %d addresses", o->name, LISTENER_MAX);
        return -1;
    }
    char reason[CONFIG_ERROR_MAX];
    if (listener_parse_address(v, &c->binds[c->bind_count], reason, sizeof reason) != 0) {
        snprintf(err, n, "--%s: %s", o->name, reason);
        return -1;
    }
    c->bind_count++;
    return 0;
}

static int env_name_valid(const char *kv) {
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv)
        return 0;
    for (const char *p = kv; p < eq; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_') || (p == kv && isdigit((unsigned char)*p)))
            return 0;
    return 1;
}

static int apply_env(struct config *c, const struct option_spec *o, const char *v, char *err, size_t n) {
    if (!env_name_valid(v)) {
        snprintf(err, n, "--%s: '%s' is not KEY=VALUE with KEY made of letters, digits and _", o->name, v);
        return -1;
    }
    if (string_list_append(&c->env, v) != 0) {
        snprintf(err, n, "--%s: too many variables (at most %d)", o->name, STRING_LIST_MAX);
        return -1;
    }
    return 0;
}

static int apply_env_file(struct config *c, const struct option_spec *o, const char *v, char *err, size_t n) {
    char reason[CONFIG_ERROR_MAX];
    if (config_read_env_file(v, &c->env, reason, sizeof reason) != 0) {
        snprintf(err, n, "--%s: %s", o->name, reason);
        return -1;
    }
    return 0;
}

static int apply_balance(struct config *c, const struct option_spec *o, const char *v, char *err, size_t n) {
    if (strcmp(v, "even") == 0)
        c->balance = BALANCE_EVEN;
    else if (strcmp(v, "kernel") == 0)
        c->balance = BALANCE_KERNEL;
    else {
        snprintf(err, n, "--%s: '%s' is not one of %s", o->name, v, o->choices);
        return -1;
    }
    return 0;
}

const char *balance_mode_name(enum balance_mode mode) {
    return mode == BALANCE_KERNEL ? "kernel" : "even";
}

/* MIN:MAX; the upper limit (--max-workers) is checked once every flag is known. */
static int apply_autoscale(struct config *c, const struct option_spec *o, const char *v, char *err, size_t n) {
    char reason[CONFIG_ERROR_MAX];
    if (autoscale_parse_range(v, CONFIG_MAX_WORKERS_LIMIT, &c->autoscale.min, &c->autoscale.max, reason, sizeof reason) != 0) {
        snprintf(err, n, "--%s: %s", o->name, reason);
        return -1;
    }
    c->autoscale.enabled = true;
    return 0;
}

static int apply_fraction(struct config *c, const struct option_spec *o, const char *v, char *err, size_t n) {
    char *end;
    errno = 0;
    double value = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(value) || value < o->min || value > o->max) {
        snprintf(err, n, "--%s: '%s' is not a number from %g to %g", o->name, v, o->min, o->max);
        return -1;
    }
    *(double *)((char *)c + o->offset) = value;
    return 0;
}

static int apply_count(struct config *c, const struct option_spec *o, const char *v, char *err, size_t n) {
    unsigned value;
    if (parse_uint_option(o, v, &value, err, n) != 0)
        return -1;
    *(double *)((char *)c + o->offset) = value;
    return 0;
}

/* --config is read before everything else (see config_parse); here it only needs to be accepted. */
static int apply_nothing(struct config *c, const struct option_spec *o, const char *v, char *err, size_t n) {
    (void)c, (void)o, (void)v, (void)err, (void)n;
    return 0;
}

/* ---- gunicorn's and uvicorn's spellings (README: "Coming from gunicorn, uvicorn or fastapi run") ---- */

/* Another server's name for an arbiter option: applied (and forwarded) as that option. */
static int apply_alias(struct config *c, const struct option_spec *o, const char *v, char *err, size_t n) {
    char reason[CONFIG_ERROR_MAX];
    if (option_apply(c, option_find(o->choices), v, reason, sizeof reason) == 0)
        return 0;
    snprintf(err, n, "%s (given as --%s)", reason, o->name);
    return -1;
}

/* A flag arbiter will not honour: the row's help line is the reason and what to use instead. */
static int apply_refused(struct config *c, const struct option_spec *o, const char *v, char *err, size_t n) {
    (void)c, (void)v;
    snprintf(err, n, "--%s %s", o->name, o->help);
    return -1;
}

/* A flag with nothing to do here: accepted with a notice (the help line says why). */
static int apply_ignored(struct config *c, const struct option_spec *o, const char *v, char *err, size_t n) {
    (void)v;
    char notice[CONFIG_ERROR_MAX];
    snprintf(notice, sizeof notice, "--%s %s", o->name, o->help);
    if (string_list_append(&c->notices, notice) != 0) {
        snprintf(err, n, "out of memory");
        return -1;
    }
    return 0;
}

/* -k: arbiter's workers are uvicorn's, so only uvicorn's gunicorn worker classes mean the same. */
static int apply_worker_class(struct config *c, const struct option_spec *o, const char *v, char *err, size_t n) {
    if (strcmp(v, "uvicorn.workers.UvicornWorker") == 0 || strcmp(v, "uvicorn_worker.UvicornWorker") == 0) {
        char notice[CONFIG_ERROR_MAX];
        snprintf(notice, sizeof notice, "--%s %s: accepted, arbiter's workers are uvicorn's", o->name, v);
        if (string_list_append(&c->notices, notice) == 0)
            return 0;
        snprintf(err, n, "out of memory");
        return -1;
    }
    if (strcmp(v, "uvicorn.workers.UvicornH11Worker") == 0 || strcmp(v, "uvicorn_worker.UvicornH11Worker") == 0)
        snprintf(err, n, "--%s %s: arbiter's workers are uvicorn's; for its h11 parser pass --http h11 instead of -k",
                 o->name, v);
    else
        snprintf(err, n, "--%s %s: arbiter serves ASGI apps with uvicorn workers only, so gunicorn's '%s' worker "
                 "(sync, gthread, gevent, eventlet, tornado, asgi: gunicorn's own) has no equivalent; drop -k, or "
                 "pass -k uvicorn.workers.UvicornWorker (a WSGI app stays on gunicorn)", o->name, v, v);
    return -1;
}

/* gunicorn's --error-logfile: '-' is stderr (arbiter's default), a path is --log-file PATH. */
static int apply_error_logfile(struct config *c, const struct option_spec *o, const char *v, char *err, size_t n) {
    if (strcmp(v, "-") != 0)
        return apply_log_file(c, option_find("log-file"), v, err, n);
    (void)o;
    c->log_to_stdout = false;
    free(c->log_file);
    c->log_file = NULL;
    return 0;
}

/* gunicorn's --access-logfile: '-' turns the access log on in arbiter's one log stream; a separate
 * file for access lines does not exist here. */
static int apply_access_logfile(struct config *c, const struct option_spec *o, const char *v, char *err, size_t n) {
    if (strcmp(v, "-") == 0) {
        c->access_log = true;
        return 0;
    }
    snprintf(err, n, "--%s %s: arbiter writes access lines into its one log stream, not a file of their own; pass "
             "--access-log (the default) and --log-file %s for both, or --access-logfile - for the stream", o->name, v, v);
    return -1;
}

/* uvicorn's --uds PATH and --fd N: binds in arbiter's spelling. */
static int apply_uds(struct config *c, const struct option_spec *o, const char *v, char *err, size_t n) {
    char address[PATH_MAX + 16];
    snprintf(address, sizeof address, "%s%s", strcmp(o->name, "fd") == 0 ? "fd://" : "unix:", v);
    return apply_bind(c, o, address, err, n);
}

#define FIELD(f) offsetof(struct config, f)

/* The flags of `arbiter run` and `arbiter check`. Names follow gunicorn and uvicorn. */
static const struct option_spec option_table[] = {
    {"workers", 'w', "N", apply_uint, FIELD(workers), 1, CONFIG_MAX_WORKERS_LIMIT, NULL, 0,
     "worker processes (default $WEB_CONCURRENCY, else the number of usable CPUs)"},
    {"max-workers", 0, "N", apply_uint, FIELD(max_workers), 1, CONFIG_MAX_WORKERS_LIMIT, NULL, 0,
     "upper limit for `ctl scale` (default 128)"},
    {"bind", 'b', "ADDR", apply_bind, 0, 0, 0, NULL, OPT_REPEAT,
     "listen on HOST:PORT, [V6]:PORT, unix:PATH or fd://N; repeatable (default 127.0.0.1:8000)"},
    {"socket-mode", 0, "MODE", apply_octal_mode, FIELD(socket_mode), 0, 0777, NULL, 0,
     "file mode of unix: sockets (default 660)"},
    {"backlog", 0, "N", apply_uint, FIELD(backlog), 1, 65535, NULL, OPT_FORWARD,
     "listen queue length (default 2048; the kernel caps it at net.core.somaxconn)"},
    {"reuse-port", 0, NULL, apply_true, FIELD(reuse_port), 0, 0, NULL, 0,
     "one SO_REUSEPORT listener per worker slot instead of one shared queue"},
    {"python", 0, "PATH", apply_string, FIELD(python), 0, 0, NULL, 0,
     "the app's interpreter (default $VIRTUAL_ENV/bin/python, else python3)"},
    {"preload", 0, NULL, apply_true, FIELD(preload), 0, 0, NULL, 0,
     "fork server: a zygote imports the app once and forks the workers (shared memory, fast start)"},
    {"max-surge", 0, "N", apply_uint, FIELD(max_surge), 1, CONFIG_MAX_WORKERS_LIMIT, NULL, 0,
     "workers replaced at once during a reload (default 25% of the workers, at least 1)"},
    {"balance", 0, "MODE", apply_balance, 0, 0, 0, "even|kernel", 0,
     "even: a worker holds off accepting while it has more than its share of connections (default); "
     "kernel: each worker accepts whatever it can (always with --reuse-port)"},
    {"autoscale", 0, "MIN:MAX", apply_autoscale, 0, 0, 0, NULL, 0,
     "scale between MIN and MAX workers on accept queue, busy workers and event-loop lag (-w is the start)"},
    {"autoscale-idle", 0, "S", apply_seconds, FIELD(autoscale.idle_s), 0.1, 86400, NULL, 0,
     "remove one worker after S seconds of low load (default 60)"},
    {"autoscale-max-memory", 0, "SIZE", apply_size, FIELD(autoscale.max_memory), 0, CONFIG_MAX_MEMORY_LIMIT, NULL, 0,
     "never scale up past SIZE of total worker PSS (e.g. 4G)"},
    {"autoscale-up-after", 0, "S", apply_seconds, FIELD(autoscale.up_after_s), 0.25, 3600, NULL, 0,
     "add workers once pressure has lasted about S seconds (default 1)"},
    {"autoscale-queue", 0, "N", apply_count, FIELD(autoscale.queue), 1, 65535, NULL, 0,
     "pressure: N connections waiting in the accept queue, on average (default 1)"},
    {"autoscale-busy", 0, "F", apply_fraction, FIELD(autoscale.busy), 0.05, 1, NULL, 0,
     "pressure: this fraction of the workers has requests in flight (default 0.9)"},
    {"autoscale-lag", 0, "S", apply_seconds, FIELD(autoscale.lag_s), 0.001, 60, NULL, 0,
     "pressure: the workers' event loops run this late, on average (default 50ms)"},
    {"chdir", 0, "DIR", apply_string, FIELD(chdir), 0, 0, NULL, 0,
     "directory the workers run in (the app is imported from there)"},
    {"env", 'e', "K=V", apply_env, 0, 0, 0, NULL, OPT_REPEAT, "set a variable in the workers' environment; repeatable"},
    {"env-file", 0, "FILE", apply_env_file, 0, 0, 0, NULL, OPT_REPEAT,
     "read KEY=VALUE lines into the workers' environment; repeatable"},
    {"name", 'n', "NAME", apply_string, FIELD(name), 0, 0, NULL, 0,
     "name in logs and in the default control socket path (default arbiter)"},
    {"config", 'c', "FILE", apply_nothing, 0, 0, 0, NULL, 0,
     "JSON file of options: {\"workers\": 4, \"bind\": [\"unix:/run/app.sock\"]}; flags override it. "
     "A FILE.py is a gunicorn config, converted as `arbiter migrate FILE.py` does"},
    {"control", 0, "PATH", apply_string, FIELD(control_path), 0, 0, NULL, 0,
     "control socket (default $ARBITER_CONTROL, else $RUNTIME_DIRECTORY/NAME.sock, else /run/arbiter/NAME.sock for root)"},
    {"control-group", 0, "GROUP", apply_string, FIELD(control_group), 0, 0, NULL, 0,
     "members of GROUP may run `ctl status`"},
    {"timeout", 't', "S", apply_seconds, FIELD(timeout), 0, 86400, NULL, 0,
     "kill a worker whose event loop sends no heartbeat for S seconds (default 30; 0 = never)"},
    {"boot-timeout", 0, "S", apply_seconds, FIELD(boot_timeout), 0, 86400, NULL, 0,
     "kill a worker not ready S seconds after it started (default 60; 0 = never)"},
    {"graceful-timeout", 0, "S", apply_seconds, FIELD(graceful_timeout), 0, 86400, NULL, 0,
     "time a stopping worker gets to finish its requests before SIGKILL (default 30)"},
    {"lame-duck", 0, "S", apply_seconds, FIELD(lame_duck), 0, 3600, NULL, 0,
     "after TERM, keep accepting for S seconds while /healthz says 503, then refuse new clients (default 0)"},
    {"max-requests", 0, "N", apply_uint, FIELD(max_requests), 0, CONFIG_MAX_REQUESTS_LIMIT, NULL, 0,
     "replace a worker after N requests, overlapped (default 0 = never)"},
    {"max-requests-jitter", 0, "N", apply_uint, FIELD(max_requests_jitter), 0, CONFIG_MAX_REQUESTS_LIMIT, NULL, 0,
     "add 0..N to each worker's --max-requests so they do not all restart at once"},
    {"max-lifetime", 0, "S", apply_seconds, FIELD(max_lifetime), 0, 31536000, NULL, 0,
     "replace a worker after S seconds, overlapped (default 0 = never)"},
    {"max-memory", 0, "SIZE", apply_size, FIELD(max_memory), 0, CONFIG_MAX_MEMORY_LIMIT, NULL, 0,
     "replace a worker whose PSS exceeds SIZE (e.g. 512M), overlapped"},
    {"user", 'u', "USER", apply_string, FIELD(user), 0, 0, NULL, 0, "run the workers as USER"},
    {"group", 'g', "GROUP", apply_string, FIELD(group), 0, 0, NULL, 0, "run the workers with GROUP"},
    {"metrics", 0, "ADDR", apply_string, FIELD(metrics), 0, 0, NULL, 0,
     "serve Prometheus /metrics and /healthz on ADDR (HOST:PORT or unix:PATH)"},
    {"min-ready", 0, "N", apply_uint, FIELD(min_ready), 1, CONFIG_MAX_WORKERS_LIMIT, NULL, 0,
     "/healthz answers 503 while fewer than N workers are ready (default 1)"},
    {"log-level", 0, "LEVEL", apply_log_level, 0, 0, 0, NULL, 0,
     "critical|error|warning|info|debug|trace (default info)"},
    {"log-format", 0, "FORMAT", apply_log_format, 0, 0, 0, NULL, 0, "text|json (default text)"},
    {"log-file", 0, "PATH", apply_log_file, FIELD(log_file), 0, 0, NULL, 0,
     "append the arbiter's and the workers' logs to PATH instead of stderr (- : stdout); SIGUSR1 reopens it"},
    {"access-log", 0, NULL, apply_true, FIELD(access_log), 0, 0, NULL, 0, "log every request (default)"},
    {"no-access-log", 0, NULL, apply_false, FIELD(access_log), 0, 0, NULL, 0, "do not log requests"},
    {"factory", 0, NULL, apply_true, FIELD(factory), 0, 0, NULL, 0,
     "APP is a callable returning the ASGI app"},
    /* uvicorn's options, checked here and passed to every worker unchanged. */
    {"loop", 0, "LOOP", apply_choice, 0, 0, 0, "auto|asyncio|uvloop", OPT_FORWARD,
     "event loop (uvicorn --loop; default auto)"},
    {"http", 0, "HTTP", apply_choice, 0, 0, 0, "auto|h11|httptools", OPT_FORWARD,
     "HTTP implementation (uvicorn --http; default auto)"},
    {"ws", 0, "WS", apply_choice, 0, 0, 0, "auto|none|websockets|websockets-sansio|wsproto", OPT_FORWARD,
     "WebSocket implementation (uvicorn --ws; default auto)"},
    {"lifespan", 0, "MODE", apply_choice, 0, 0, 0, "auto|on|off", OPT_FORWARD,
     "ASGI lifespan (uvicorn --lifespan; default auto)"},
    {"proxy-headers", 0, NULL, apply_forward, 0, 0, 0, NULL, OPT_FORWARD,
     "trust X-Forwarded-For/-Proto from --forwarded-allow-ips (uvicorn's default)"},
    {"no-proxy-headers", 0, NULL, apply_forward, 0, 0, 0, NULL, OPT_FORWARD, "ignore X-Forwarded-* headers"},
    {"forwarded-allow-ips", 0, "IPS", apply_forward, 0, 0, 0, NULL, OPT_FORWARD,
     "comma-separated proxy addresses to trust, or * (uvicorn's default 127.0.0.1)"},
    {"root-path", 0, "PATH", apply_forward, 0, 0, 0, NULL, OPT_FORWARD, "ASGI root_path for apps behind a path prefix"},
    {"timeout-keep-alive", 0, "S", apply_number_forward, 0, 0, 86400, NULL, OPT_FORWARD,
     "close idle keep-alive connections after S seconds (uvicorn's default 5)"},
    {"limit-concurrency", 0, "N", apply_number_forward, 0, 1, 1000000, NULL, OPT_FORWARD,
     "per worker: answer 503 beyond N concurrent connections and tasks"},
    {"pid", 'p', "FILE", apply_string, FIELD(pid_file), 0, 0, NULL, 0,
     "write the arbiter's pid to FILE, removed at exit (the pid survives `ctl upgrade`)"},
    /* gunicorn's and uvicorn's spellings: the same meaning as the arbiter option they name. */
    {"worker-class", 'k', "CLASS", apply_worker_class, 0, 0, 0, NULL, 0,
     "gunicorn's -k: uvicorn.workers.UvicornWorker or uvicorn_worker.UvicornWorker is accepted (arbiter's "
     "workers are uvicorn's); any other class is refused"},
    {"keep-alive", 0, "S", apply_alias, 0, 0, 0, "timeout-keep-alive", 0, "gunicorn's name for --timeout-keep-alive"},
    {"access-logfile", 0, "FILE", apply_access_logfile, 0, 0, 0, NULL, 0,
     "gunicorn's: '-' is --access-log (access lines join arbiter's log stream)"},
    {"error-logfile", 0, "FILE", apply_error_logfile, 0, 0, 0, NULL, 0,
     "gunicorn's: FILE is --log-file FILE; '-' is stderr (the default)"},
    {"uds", 0, "PATH", apply_uds, 0, 0, 0, NULL, OPT_REPEAT, "uvicorn's name for --bind unix:PATH"},
    {"fd", 0, "N", apply_uds, 0, 0, 0, NULL, OPT_REPEAT, "uvicorn's name for --bind fd://N"},
    {"worker-tmp-dir", 0, "DIR", apply_ignored, 0, 0, 0, NULL, 0,
     "ignored: gunicorn's heartbeat file; arbiter's heartbeat goes over each worker's channel and needs no file"},
    {"daemon", 'D', NULL, apply_refused, 0, 0, 0, NULL, 0,
     "refused: arbiter stays in the foreground for its supervisor: use systemd (Type=notify; "
     "packaging/systemd/arbiter@.service), or run it as a container's command"},
    {"reload", 0, NULL, apply_refused, 0, 0, 0, NULL, 0,
     "refused: uvicorn's --reload watches files, for development; in production deploy the code, then `arbiter ctl reload` "
     "(or SIGHUP) replaces the workers with the new code, overlapped"},
    {"help", 'h', NULL, apply_nothing, 0, 0, 0, NULL, 0, "show this help"},
};

#define OPTION_COUNT (sizeof option_table / sizeof option_table[0])

/* pool.c draws each worker's limit as max_requests + random() % (jitter + 1), in unsigned arithmetic:
 * the two ranges above keep both the divisor and the sum from wrapping. */
_Static_assert(2ull * CONFIG_MAX_REQUESTS_LIMIT + 1 < UINT_MAX, "max-requests + jitter must fit an unsigned");

/* ---- small parsers ---- */

int config_parse_seconds(const char *text, double *seconds) {
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    if (errno || end == text || !isfinite(value) || value < 0 || !isdigit((unsigned char)text[0]))
        return -1;
    if (strcmp(end, "") == 0 || strcmp(end, "s") == 0)
        ;
    else if (strcmp(end, "ms") == 0)
        value /= 1000;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
        value *= 60;
    else if (strcmp(end, "h") == 0)
        value *= 3600;
    else
        return -1;
    *seconds = value;
    return 0;
}

int config_parse_size(const char *text, uint64_t *bytes) {
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    if (errno || end == text || !isfinite(value) || value < 0 || !isdigit((unsigned char)text[0]))
        return -1;
    static const struct {
        const char *suffix;
        double factor;
    } units[] = {{"", 1},
                 {"B", 1},
                 {"K", 1024.0},
                 {"KB", 1024.0},
                 {"KiB", 1024.0},
                 {"M", 1048576.0},
                 {"MB", 1048576.0},
                 {"MiB", 1048576.0},
                 {"G", 1073741824.0},
                 {"GB", 1073741824.0},
                 {"GiB", 1073741824.0},
                 {"T", 1099511627776.0},
                 {"TB", 1099511627776.0},
                 {"TiB", 1099511627776.0}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcasecmp(end, units[i].suffix) == 0) {
            double result = value * units[i].factor;
            if (result >= 18446744073709551615.0)
                return -1;
            *bytes = (uint64_t)result;
            return 0;
        }
    }
    return -1;
}

int string_list_append(struct string_list *list, const char *value) {
    if (list->count >= STRING_LIST_MAX)
        return -1;
    if (list->count + 1 >= list->capacity) {
        size_t capacity = list->capacity ? list->capacity * 2 : 8;
        char **items = realloc(list->items, capacity * sizeof *items);
        if (!items)
            return -1;
        list->items = items;
        list->capacity = capacity;
    }
    char *copy = strdup(value);
    if (!copy)
        return -1;
    list->items[list->count++] = copy;
    list->items[list->count] = NULL;
    return 0;
}

void string_list_free(struct string_list *list) {
    for (size_t i = 0; i < list->count; i++)
        free(list->items[i]);
    free(list->items);
    memset(list, 0, sizeof *list);
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s))
        s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

int config_read_env_file(const char *path, struct string_list *list, char *err, size_t err_size) {
    FILE *file = fopen(path, "re");
    if (!file) {
        snprintf(err, err_size, "cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    char line[ENV_FILE_LINE_MAX];
    unsigned number = 0;
    int rc = 0;
    while (fgets(line, sizeof line, file)) {
        number++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            snprintf(err, err_size, "%s:%u: line longer than %d bytes", path, number, ENV_FILE_LINE_MAX - 2);
            rc = -1;
            break;
        }
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        if (strncmp(s, "export ", 7) == 0)
            s = trim(s + 7);
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, err_size, "%s:%u: '%s' is not KEY=VALUE", path, number, s);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *key = trim(s);
        char *value = trim(eq + 1);
        size_t value_len = strlen(value);
        if (value_len >= 2 && (value[0] == '"' || value[0] == '\'') && value[value_len - 1] == value[0]) {
            value[value_len - 1] = '\0';
            value++;
        }
        char pair[ENV_FILE_LINE_MAX];
        snprintf(pair, sizeof pair, "%s=%s", key, value);
        if (!env_name_valid(pair)) {
            snprintf(err, err_size, "%s:%u: '%s' is not a valid variable name", path, number, key);
            rc = -1;
            break;
        }
        if (string_list_append(list, pair) != 0) {
            snprintf(err, err_size, "%s:%u: too many variables (at most %d)", path, number, STRING_LIST_MAX);
            rc = -1;
            break;
        }
    }
    fclose(file);
    return rc;
}

unsigned config_usable_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return (unsigned)CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

static const struct option_spec *option_find(const char *name) {
    for (size_t i = 0; i < OPTION_COUNT; i++)
        if (strcmp(option_table[i].name, name) == 0)
            return &option_table[i];
    return NULL;
}

/* Applies one value; remembers forwarded options for the workers. */
static int option_apply(struct config *c, const struct option_spec *o, const char *value, char *err, size_t n) {
    if (o->apply(c, o, value ? value : "", err, n) != 0)
        return -1;
    if (o->flags & OPT_FORWARD) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s", o->name);
        if (string_list_append(&c->forward, flag) != 0 || (o->metavar && string_list_append(&c->forward, value) != 0)) {
            snprintf(err, n, "too many options");
            return -1;
        }
    }
    return 0;
}

static int json_scalar_to_text(json_t *value, char *out, size_t size) {
    if (json_is_string(value))
        snprintf(out, size, "%s", json_string_value(value));
    else if (json_is_integer(value))
        snprintf(out, size, "%lld", (long long)json_integer_value(value));
    else if (json_is_real(value))
        snprintf(out, size, "%g", json_real_value(value));
    else
        return -1;
    return 0;
}

/* A value from the file goes through the same option as on the command line; its error then names the
 * file and the key instead of the flag alone: "--config FILE: 'workers': 'many' is not a whole number". */
static int config_apply_file_value(struct config *c, const struct option_spec *o, const char *text, const char *path,
                                   const char *key, char *err, size_t n) {
    char reason[CONFIG_ERROR_MAX];
    if (option_apply(c, o, text, reason, sizeof reason) == 0)
        return 0;
    char flag[96];
    snprintf(flag, sizeof flag, "--%s: ", o->name);
    const char *why = strncmp(reason, flag, strlen(flag)) == 0 ? reason + strlen(flag) : reason;
    snprintf(err, n, "--config %s: '%s': %s", path, key, why);
    return -1;
}

static config_python_loader_fn python_loader;

void config_set_python_loader(config_python_loader_fn loader) {
    python_loader = loader;
}

static bool is_python_file(const char *path) {
    size_t len = strlen(path);
    return len > 3 && strcmp(path + len - 3, ".py") == 0;
}

static int config_apply_file(struct config *c, const char *path, const char *python, char *err, size_t n) {
    json_error_t json_error;
    json_t *root;
    if (is_python_file(path)) {
        if (!python_loader) {
            snprintf(err, n, "--config %s: a gunicorn config needs `arbiter migrate`", path);
            return -1;
        }
        root = python_loader(path, python, err, n);
        if (!root)
            return -1;
    } else if (!(root = json_load_file(path, JSON_REJECT_DUPLICATES, &json_error))) {
        snprintf(err, n, "--config %s: line %d: %s%s", path, json_error.line, json_error.text,
                 json_error.line == 1 ? " (a gunicorn config? name it FILE.py)" : "");
        return -1;
    }
    int rc = 0;
    const char *key;
    json_t *value;
    if (!json_is_object(root)) {
        snprintf(err, n, "--config %s: the file must hold one JSON object of option names", path);
        rc = -1;
    }
    json_object_foreach(root, key, value) {
        if (rc != 0)
            break;
        const struct option_spec *o = option_find(key);
        if (!o || o->apply == apply_nothing) {
            snprintf(err, n, "--config %s: '%s' is not an option of arbiter run (see arbiter run --help)", path, key);
            rc = -1;
            break;
        }
        if (!o->metavar) {
            if (!json_is_boolean(value)) {
                snprintf(err, n, "--config %s: '%s' takes true or false", path, key);
                rc = -1;
            } else if (json_is_true(value)) {
                rc = config_apply_file_value(c, o, NULL, path, key, err, n);
            } else {
                char negated[80];
                snprintf(negated, sizeof negated, "no-%s", key);
                const struct option_spec *neg = option_find(negated);
                if (neg)
                    rc = config_apply_file_value(c, neg, NULL, path, key, err, n);
            }
            continue;
        }
        size_t count = json_is_array(value) ? json_array_size(value) : 1;
        if (json_is_array(value) && !(o->flags & OPT_REPEAT)) {
            snprintf(err, n, "--config %s: '%s' takes one value, not a list", path, key);
            rc = -1;
            break;
        }
        for (size_t i = 0; i < count && rc == 0; i++) {
            json_t *item = json_is_array(value) ? json_array_get(value, i) : value;
            char text[1024];
            if (json_scalar_to_text(item, text, sizeof text) != 0) {
                snprintf(err, n, "--config %s: '%s' must be a string or a number", path, key);
                rc = -1;
                break;
            }
            rc = config_apply_file_value(c, o, text, path, key, err, n);
        }
    }
    json_decref(root);
    return rc;
}

static int set_default_string(char **field, const char *value) {
    if (*field)
        return 0;
    *field = strdup(value);
    return *field ? 0 : -1;
}

/* The interpreter of the venv that the arbiter binary itself was installed into (pip install),
 * found as python next to /proc/self/exe with a pyvenv.cfg one directory up. */
int config_executable_dir(char *out, size_t size) {
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0)
        return -1;
    exe[len] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    int n = snprintf(out, size, "%s", exe);
    return n > 0 && (size_t)n < size ? 0 : -1;
}

static int python_next_to_binary(char *out, size_t size) {
    char dir[PATH_MAX], cfg[PATH_MAX + 32];
    if (config_executable_dir(dir, sizeof dir) != 0)
        return -1;
    snprintf(cfg, sizeof cfg, "%s/../pyvenv.cfg", dir);
    if (access(cfg, R_OK) != 0)
        return -1;
    int n = snprintf(out, size, "%s/python", dir);
    return n > 0 && (size_t)n < size && access(out, X_OK) == 0 ? 0 : -1;
}

/* $VIRTUAL_ENV/bin/python, else the venv the binary was installed into, else python3. */
void config_default_python(char *const *envp, char *path, size_t size) {
    const char *venv = environment_get(envp, "VIRTUAL_ENV");
    if (venv && *venv)
        snprintf(path, size, "%s/bin/python", venv);
    else if (python_next_to_binary(path, size) != 0)
        snprintf(path, size, "python3");
}

/* A bare name is looked up on PATH now, as execvp would, so a typo is exit 2 at start instead of a
 * worker that can never be spawned; the found path replaces the name. */
static int resolve_python_on_path(char **python, char *const *envp, char *err, size_t n) {
    const char *path = environment_get(envp, "PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    const char *start = path;
    for (;;) {
        const char *end = strchr(start, ':');
        size_t length = end ? (size_t)(end - start) : strlen(start);
        char candidate[PATH_MAX];
        int written = snprintf(candidate, sizeof candidate, "%.*s/%s", (int)length, length ? start : ".", *python);
        struct stat st;
        if (written > 0 && (size_t)written < sizeof candidate && stat(candidate, &st) == 0 && S_ISREG(st.st_mode) &&
            access(candidate, X_OK) == 0) {
            char *found = strdup(candidate);
            if (!found) {
                snprintf(err, n, "out of memory");
                return -1;
            }
            free(*python);
            *python = found;
            return 0;
        }
        if (!end)
            break;
        start = end + 1;
    }
    snprintf(err, n, "--python %s: not found on PATH (%.200s); pass the interpreter of the app's venv, e.g. --python "
             "/srv/app/.venv/bin/python", *python, path);
    return -1;
}

static int check_python(const char *python, char *err, size_t n) {
    if (strchr(python, '/')) {
        struct stat st;
        if (stat(python, &st) != 0) {
            snprintf(err, n, "--python %s: %s; pass the interpreter of the app's venv, e.g. --python /srv/app/.venv/bin/python",
                     python, strerror(errno));
            return -1;
        }
        if (!S_ISREG(st.st_mode) || access(python, X_OK) != 0) {
            snprintf(err, n, "--python %s: not an executable file; pass the interpreter of the app's venv, e.g. --python /srv/app/.venv/bin/python",
                     python);
            return -1;
        }
    }
    return 0;
}

/* --autoscale MIN:MAX against --max-workers and -w: -w given is the start and must be in range; -w
 * defaulted (CPUs, WEB_CONCURRENCY) is moved into the range. */
static int config_check_autoscale(struct config *c, bool workers_given, char *err, size_t n) {
    struct autoscale_policy *p = &c->autoscale;
    if (!p->enabled)
        return 0;
    if (p->max > c->max_workers) {
        snprintf(err, n, "--autoscale %u:%u: MAX is more than --max-workers %u; raise --max-workers or lower MAX",
                 p->min, p->max, c->max_workers);
        return -1;
    }
    if (c->workers < p->min || c->workers > p->max) {
        if (workers_given) {
            snprintf(err, n, "--workers %u is outside --autoscale %u:%u; -w is the starting count, between MIN and MAX",
                     c->workers, p->min, p->max);
            return -1;
        }
        c->workers = c->workers < p->min ? p->min : p->max;
    }
    return 0;
}

static int config_apply_defaults(struct config *c, char *const *envp, char *err, size_t n) {
    bool workers_given = c->workers != 0;
    if (!c->workers) {
        const char *web = environment_get(envp, "WEB_CONCURRENCY");
        if (web && *web) {
            struct option_spec o = *option_find("workers");
            char reason[CONFIG_ERROR_MAX];
            if (apply_uint(c, &o, web, reason, sizeof reason) != 0) {
                snprintf(err, n, "WEB_CONCURRENCY='%s' is not a whole number from 1 to %d; fix or unset it, or pass -w N",
                         web, CONFIG_MAX_WORKERS_LIMIT);
                return -1;
            }
        } else {
            c->workers = config_usable_cpus();
        }
    }
    if (!c->max_workers)
        c->max_workers = c->workers > 128 ? c->workers : 128;
    if (c->workers > c->max_workers) {
        snprintf(err, n, "--workers %u is more than --max-workers %u; raise --max-workers", c->workers, c->max_workers);
        return -1;
    }
    if (config_check_autoscale(c, workers_given, err, n) != 0)
        return -1;
    if (c->balance == BALANCE_EVEN && c->reuse_port) {
        snprintf(err, n, "--balance even needs the shared socket: with --reuse-port each worker has its own queue; "
                 "drop one of the two");
        return -1;
    }
    if (c->balance == BALANCE_DEFAULT)
        c->balance = c->reuse_port ? BALANCE_KERNEL : BALANCE_EVEN;
    if (c->bind_count == 0 && !environment_get(envp, "LISTEN_FDS")) {
        /* `check` only boots the app: a port the kernel picks, so it never collides with a server
         * already running on 8000 (the CI machine, the developer's own). */
        const char *fallback = strcmp(c->command, "check") == 0 ? "127.0.0.1:0" : "127.0.0.1:8000";
        char reason[CONFIG_ERROR_MAX];
        if (listener_parse_address(fallback, &c->binds[0], reason, sizeof reason) != 0) {
            snprintf(err, n, "default bind: %s", reason);
            return -1;
        }
        c->bind_count = 1;
    }
    if (!c->python) {
        char path[PATH_MAX];
        config_default_python(envp, path, sizeof path);
        if (set_default_string(&c->python, path) != 0)
            goto oom;
    }
    if (set_default_string(&c->name, "arbiter") != 0)
        goto oom;
    if (!c->control_path) {
        const char *from_env = environment_get(envp, "ARBITER_CONTROL");
        if (from_env && *from_env && set_default_string(&c->control_path, from_env) != 0)
            goto oom;
    }
    if (c->max_requests_jitter && !c->max_requests) {
        snprintf(err, n, "--max-requests-jitter needs --max-requests");
        return -1;
    }
    if (c->min_ready > c->max_workers) {
        snprintf(err, n, "--min-ready %u is more than --max-workers %u: /healthz could never say 200; lower --min-ready",
                 c->min_ready, c->max_workers);
        return -1;
    }
    if (c->chdir) {
        struct stat st;
        int found = stat(c->chdir, &st) == 0;
        if (!found || !S_ISDIR(st.st_mode)) {
            snprintf(err, n, "--chdir %s: %s", c->chdir, found ? "not a directory" : strerror(errno));
            return -1;
        }
    }
    if (!strchr(c->python, '/') && resolve_python_on_path(&c->python, envp, err, n) != 0)
        return -1;
    return check_python(c->python, err, n);
oom:
    snprintf(err, n, "out of memory");
    return -1;
}

static void config_set_builtin_defaults(struct config *c, const char *command) {
    memset(c, 0, sizeof *c);
    c->command = command;
    c->socket_mode = 0660;
    c->timeout = 30;
    c->boot_timeout = 60;
    c->graceful_timeout = 30;
    c->backlog = 2048;
    c->log_level = LOG_INFO;
    c->log_format = LOG_FORMAT_TEXT;
    c->access_log = true;
    c->min_ready = 1;
    c->autoscale = (struct autoscale_policy){
        .up_after_s = 1, .idle_s = 60, .queue = 1, .busy = 0.9, .lag_s = 0.05};
}

/* getopt_long's tables, both from option_table: long options get val 1000 + their index. */
static void config_getopt_tables(struct option long_options[OPTION_COUNT + 1], char short_options[2 * OPTION_COUNT + 3]) {
    size_t s = 0;
    short_options[s++] = ':'; /* report a missing value as ':' */
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        const struct option_spec *o = &option_table[i];
        long_options[i] = (struct option){o->name, o->metavar ? required_argument : no_argument, NULL, (int)(1000 + i)};
        if (o->short_name) {
            short_options[s++] = (char)o->short_name;
            if (o->metavar)
                short_options[s++] = ':';
        }
    }
    short_options[s] = '\0';
    long_options[OPTION_COUNT] = (struct option){0, 0, 0, 0};
}

/* --config first, so that every flag on the command line overrides the file. A gunicorn config
 * (FILE.py) is evaluated by the app's interpreter: --python if given, else the default. */
static int config_apply_files(struct config *c, int argc, char **argv, char *const *envp, char *err, size_t err_size) {
    const char *python = NULL;
    char default_python[PATH_MAX];
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--python") == 0 && i + 1 < argc)
            python = argv[i + 1];
        else if (strncmp(argv[i], "--python=", 9) == 0)
            python = argv[i] + 9;
    }
    if (!python) {
        config_default_python(envp, default_python, sizeof default_python);
        python = default_python;
    }
    for (int i = 1; i < argc; i++) {
        const char *path = NULL;
        if (strcmp(argv[i], "--") == 0)
            break;
        if ((strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) && i + 1 < argc)
            path = argv[i + 1];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            path = argv[i] + 9;
        else if (strncmp(argv[i], "-c", 2) == 0 && argv[i][2])
            path = argv[i] + 2;
        if (path && config_apply_file(c, path, python, err, err_size) != 0)
            return -1;
    }
    return 0;
}

/* What getopt_long's '?' or ':' means, into err. */
static void config_getopt_error(int ch, char **argv, char *err, size_t err_size) {
    const char *what = argv[optind - 1];
    if (ch == '?' && optopt >= 1000)
        snprintf(err, err_size, "option '--%s' takes no value", option_table[optopt - 1000].name);
    else if (ch == '?')
        snprintf(err, err_size, "unknown option '%s'", optopt && optopt < 256 ? (char[]){'-', (char)optopt, 0} : what);
    else
        snprintf(err, err_size, "option '%s' needs a value", what);
}

/* The option_table row getopt_long's answer ch stands for. */
static const struct option_spec *config_option_for(int ch) {
    if (ch >= 1000)
        return &option_table[ch - 1000];
    size_t i;
    for (i = 0; i < OPTION_COUNT && option_table[i].short_name != ch; i++)
        ;
    return &option_table[i];
}

/* The flags of the command line, over the --config file's values. A repeatable option on the command
 * line replaces the file's list instead of adding to it (--env and --env-file share one list). */
static enum config_result config_apply_flags(struct config *c, int argc, char **argv, char *err, size_t err_size) {
    struct option long_options[OPTION_COUNT + 1];
    char short_options[2 * OPTION_COUNT + 3];
    config_getopt_tables(long_options, short_options);
    bool binds_replaced = false, env_replaced = false;
    opterr = 0;
    optind = 0; /* 0: full re-initialisation of GNU getopt, so config_parse can run again */
    for (;;) {
        int ch = getopt_long(argc, argv, short_options, long_options, NULL);
        if (ch == -1)
            return CONFIG_OK;
        if (ch == '?' || ch == ':') {
            config_getopt_error(ch, argv, err, err_size);
            return CONFIG_USAGE_ERROR;
        }
        const struct option_spec *o = config_option_for(ch);
        if (strcmp(o->name, "help") == 0) {
            config_print_help(c->command);
            return CONFIG_EXIT_OK;
        }
        if ((o->apply == apply_bind || o->apply == apply_uds) && !binds_replaced) {
            c->bind_count = 0;
            binds_replaced = true;
        } else if ((o->apply == apply_env || o->apply == apply_env_file) && !env_replaced) {
            string_list_free(&c->env);
            env_replaced = true;
        }
        if (option_apply(c, o, optarg, err, err_size) != 0)
            return CONFIG_USAGE_ERROR;
    }
}

/* The one operand after the flags (argv[optind]): APP, module:attribute. */
static int config_take_app(struct config *c, int argc, char **argv, char *err, size_t err_size) {
    if (optind >= argc) {
        snprintf(err, err_size, "missing APP: the ASGI app as module:attribute, e.g. app.main:app");
        return -1;
    }
    if (optind + 1 < argc) {
        snprintf(err, err_size, "unexpected argument '%s' after APP '%s'", argv[optind + 1], argv[optind]);
        return -1;
    }
    const char *app = argv[optind];
    const char *colon = strchr(app, ':');
    if (!colon || colon == app || !colon[1] || app[0] == '-') {
        snprintf(err, err_size, "APP '%s' is not module:attribute, e.g. app.main:app", app);
        return -1;
    }
    c->app = strdup(app);
    if (!c->app) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    return 0;
}

enum config_result config_parse(struct config *c, int argc, char **argv, char *const *envp, char *err,
                                size_t err_size) {
    config_set_builtin_defaults(c, argv[0]);
    if (config_apply_files(c, argc, argv, envp, err, err_size) != 0)
        return CONFIG_USAGE_ERROR;
    enum config_result flags = config_apply_flags(c, argc, argv, err, err_size);
    if (flags != CONFIG_OK)
        return flags;
    if (config_take_app(c, argc, argv, err, err_size) != 0)
        return CONFIG_USAGE_ERROR;
    if (strcmp(c->command, "check") == 0) {
        c->workers = 1;
        c->autoscale.enabled = false; /* one worker, booted once: nothing to scale */
    }
    if (config_apply_defaults(c, envp, err, err_size) != 0)
        return CONFIG_USAGE_ERROR;
    return CONFIG_OK;
}

void config_free(struct config *c) {
    free(c->app);
    free(c->python);
    free(c->chdir);
    free(c->name);
    free(c->control_path);
    free(c->control_group);
    free(c->user);
    free(c->group);
    free(c->metrics);
    free(c->log_file);
    free(c->pid_file);
    string_list_free(&c->notices);
    string_list_free(&c->env);
    string_list_free(&c->forward);
    memset(c, 0, sizeof *c);
}

void config_print_help(const char *command) {
    printf("usage: arbiter %s [OPTIONS] APP\n\n", command);
    if (strcmp(command, "check") == 0)
        printf("Boot one worker through lifespan startup, stop it, exit 0; exit 3 if the app fails to boot.\n\n");
    else
        printf("Serve the ASGI app APP (module:attribute) with N uvicorn worker processes.\n\n");
    printf("options:\n");
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        const struct option_spec *o = &option_table[i];
        char left[64];
        int n = o->short_name ? snprintf(left, sizeof left, "  -%c, --%s", o->short_name, o->name)
                              : snprintf(left, sizeof left, "      --%s", o->name);
        if (o->metavar)
            snprintf(left + n, sizeof left - (size_t)n, " %s", o->metavar);
        printf("%-34s %s\n", left, o->help);
    }
    printf("\nSignals: TERM graceful stop, INT/QUIT quick stop, HUP rolling reload, TTIN/TTOU one worker more/less.\n"
           "Exit codes: 0 clean stop, 1 runtime failure, 2 usage or configuration error, 3 the app failed to boot.\n");
}
