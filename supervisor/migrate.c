/* migrate.c - a gunicorn.conf.py into arbiter's --config JSON: `arbiter migrate` and `run -c FILE.py`.
 *
 * A gunicorn config is Python, so it is evaluated the way gunicorn does, by Python: the app's
 * interpreter runs the shim's evaluator (arbiter_worker/gunicorn_config.py), which knows gunicorn's
 * settings list and answers one JSON object: the options that map, and one line for every setting or
 * hook that does not, saying what to use instead. This file runs it (one child, one private libuv
 * loop, a deadline, bounded output) and presents the answer:
 * - `arbiter migrate CONFIG` prints the options as a --config file on stdout and the lines on stderr;
 *   exit 0 when everything maps, 1 when a line needs the user, 2 when the file cannot be evaluated;
 * - `arbiter run -c CONFIG` (config.c's python loader) applies the options, and refuses, listing
 *   them, when something would be dropped (a hook, TLS, syslog...): it cannot ask the user. */
#define _GNU_SOURCE
#include "migrate.h"

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "exits.h"
#include "shim.h"
#include "version.h"
#include "config.h"
#include "environment.h"

#define MIGRATE_OUTPUT_MAX (1024 * 1024)
#define MIGRATE_DEADLINE_MS 60000
#define MIGRATE_MODULE "arbiter_worker.gunicorn_config"

extern char **environ;

struct evaluation {
    uv_process_t process;
    uv_pipe_t output;
    uv_timer_t deadline;
    char *text;
    size_t length;
    bool overflow, timed_out, exited;
    int64_t exit_status;
    int term_signal;
};

/* Every handle lives in struct evaluation on the caller's stack: closing frees nothing. */
static void evaluation_close(uv_handle_t *handle) {
    if (!uv_is_closing(handle))
        uv_close(handle, NULL);
}

static void evaluation_on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
    struct evaluation *e = handle->data;
    (void)suggested;
    size_t room = MIGRATE_OUTPUT_MAX - e->length;
    *buf = uv_buf_init(e->text + e->length, (unsigned)(room > 65536 ? 65536 : room));
}

static void evaluation_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    struct evaluation *e = stream->data;
    (void)buf;
    if (nread > 0) {
        e->length += (size_t)nread;
        if (e->length >= MIGRATE_OUTPUT_MAX) {
            e->overflow = true;
            uv_process_kill(&e->process, SIGKILL);
            evaluation_close((uv_handle_t *)stream);
        }
    } else if (nread < 0) {
        evaluation_close((uv_handle_t *)stream);
    }
}

static void evaluation_on_exit(uv_process_t *process, int64_t exit_status, int term_signal) {
    struct evaluation *e = process->data;
    e->exited = true;
    e->exit_status = exit_status;
    e->term_signal = term_signal;
    uv_timer_stop(&e->deadline);
    evaluation_close((uv_handle_t *)process);
    evaluation_close((uv_handle_t *)&e->deadline);
}

static void evaluation_on_deadline(uv_timer_t *timer) {
    struct evaluation *e = timer->data;
    e->timed_out = true;
    uv_process_kill(&e->process, SIGKILL);
}

/* PYTHONPATH with the shim directory first, unless the shim is installed in the interpreter's venv. */
static char **evaluation_environment(const char *shim_dir) {
    size_t count = 0;
    while (environ[count])
        count++;
    char **env = calloc(count + 2, sizeof *env);
    if (!env)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < count; i++)
        if (strncmp(environ[i], "PYTHONPATH=", 11) != 0)
            env[n++] = strdup(environ[i]);
    if (shim_dir[0]) {
        const char *existing = environment_get(environ, "PYTHONPATH");
        char *value;
        if (asprintf(&value, "PYTHONPATH=%s%s%s", shim_dir, existing && *existing ? ":" : "",
                     existing ? existing : "") < 0)
            value = NULL;
        env[n++] = value;
    } else {
        const char *existing = environment_get(environ, "PYTHONPATH");
        if (existing) {
            char *value;
            env[n++] = asprintf(&value, "PYTHONPATH=%s", existing) < 0 ? NULL : value;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (!env[i]) {
            for (size_t j = i + 1; j < n; j++)
                free(env[j]);
            env[i] = NULL;
            environment_free(env);
            return NULL;
        }
    return env;
}

/* Runs the evaluator on path. 0: *result is its answer. -1: err says why; the evaluator's own
 * message (syntax error, traceback) is already on stderr. */
static int migrate_evaluate(const char *path, const char *python, json_t **result, char *err, size_t n) {
    char shim_dir[PATH_MAX];
    shim_find_dir(shim_dir, sizeof shim_dir);
    char **env = evaluation_environment(shim_dir);
    struct evaluation e = {0};
    e.text = malloc(MIGRATE_OUTPUT_MAX + 1);
    uv_loop_t loop;
    if (!env || !e.text || uv_loop_init(&loop) != 0) {
        snprintf(err, n, "out of memory");
        environment_free(env);
        free(e.text);
        return -1;
    }
    uv_pipe_init(&loop, &e.output, 0);
    uv_timer_init(&loop, &e.deadline);
    e.output.data = e.deadline.data = e.process.data = &e;
    char *argv[] = {(char *)python, "-m", MIGRATE_MODULE, (char *)path, NULL};
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&e.output},
        {.flags = UV_INHERIT_FD, .data.fd = 2},
    };
    uv_process_options_t options = {
        .exit_cb = evaluation_on_exit, .file = python, .args = argv, .env = env, .stdio_count = 3, .stdio = stdio};
    int rc = uv_spawn(&loop, &e.process, &options);
    environment_free(env);
    if (rc != 0) {
        snprintf(err, n, "cannot run %s to evaluate %s: %s; pass the app's interpreter with --python", python, path,
                 uv_strerror(rc));
        evaluation_close((uv_handle_t *)&e.output);
        evaluation_close((uv_handle_t *)&e.deadline);
        evaluation_close((uv_handle_t *)&e.process);
    } else {
        uv_read_start((uv_stream_t *)&e.output, evaluation_on_alloc, evaluation_on_read);
        uv_timer_start(&e.deadline, evaluation_on_deadline, MIGRATE_DEADLINE_MS, 0);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    e.text[e.length] = '\0';
    int status = -1;
    if (rc != 0)
        ;
    else if (e.timed_out)
        snprintf(err, n, "%s: still evaluating after %d s; a gunicorn config must not block", path,
                 MIGRATE_DEADLINE_MS / 1000);
    else if (e.overflow)
        snprintf(err, n, "%s: the evaluator answered more than %d bytes", path, MIGRATE_OUTPUT_MAX);
    else if (e.term_signal)
        snprintf(err, n, "%s: the evaluator (%s) died of signal %d", path, python, e.term_signal);
    else if (e.exit_status == 1 && e.length == 0)
        snprintf(err, n, "%s: %s could not run %s (see above); is it the app's interpreter (Python >= 3.9)?", path,
                 python, MIGRATE_MODULE);
    else if (e.exit_status != 0)
        snprintf(err, n, "%s cannot be evaluated (see above)", path);
    else {
        json_error_t error;
        *result = json_loads(e.text, 0, &error);
        if (!*result || !json_is_object(json_object_get(*result, "options")) ||
            !json_is_array(json_object_get(*result, "lines"))) {
            snprintf(err, n, "%s: the evaluator's answer is not what arbiter expects: %s", path,
                     *result ? "no options and lines" : error.text);
            json_decref(*result);
            *result = NULL;
        } else {
            status = 0;
        }
    }
    free(e.text);
    return status;
}

/* Prints each line on stderr; returns how many need the user (unmapped) and how many are warnings. */
static void migrate_print_lines(const char *prefix, json_t *lines, size_t *unmapped, size_t *warnings) {
    size_t i;
    json_t *line;
    *unmapped = *warnings = 0;
    json_array_foreach(lines, i, line) {
        const char *level = json_string_value(json_array_get(line, 0));
        const char *name = json_string_value(json_array_get(line, 1));
        const char *text = json_string_value(json_array_get(line, 2));
        if (!level || !name || !text)
            continue;
        if (strcmp(level, "unmapped") == 0)
            (*unmapped)++;
        else if (strcmp(level, "warning") == 0)
            (*warnings)++;
        fprintf(stderr, "%s%s: %s: %s\n", prefix, level, name, text);
    }
}

struct json_t *migrate_load_for_run(const char *path, const char *python, char *err, size_t n) {
    json_t *answer = NULL;
    if (migrate_evaluate(path, python, &answer, err, n) != 0)
        return NULL;
    char prefix[PATH_MAX + 16];
    snprintf(prefix, sizeof prefix, "arbiter: %s: ", path);
    size_t unmapped, warnings;
    migrate_print_lines(prefix, json_object_get(answer, "lines"), &unmapped, &warnings);
    json_t *options = json_incref(json_object_get(answer, "options"));
    json_decref(answer);
    if (unmapped) {
        snprintf(err, n, "--config %s: %zu gunicorn setting%s or hook%s would be dropped (the 'unmapped' lines "
                 "above); `arbiter migrate %s` converts the rest, then resolve each line", path, unmapped,
                 unmapped == 1 ? "" : "s", unmapped == 1 ? "" : "s", path);
        json_decref(options);
        return NULL;
    }
    return options;
}

static void migrate_usage(FILE *out) {
    fprintf(out, "usage: arbiter migrate GUNICORN_CONF_PY [--python PATH]\n\n"
                 "Evaluates a gunicorn config with the app's interpreter and prints arbiter's --config JSON on stdout;\n"
                 "every setting or hook without an equivalent gets a line on stderr saying what to use instead.\n"
                 "  --python PATH   the app's interpreter (default $VIRTUAL_ENV/bin/python, else python3)\n\n"
                 "Exit codes: 0 everything maps, 1 a line needs you, 2 the file cannot be read or evaluated.\n"
                 "  arbiter migrate gunicorn.conf.py > arbiter.json && arbiter run --config arbiter.json app:app\n");
}

int migrate_main(int argc, char **argv) {
    const char *path = NULL, *python = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            migrate_usage(stdout);
            return EXIT_CLEAN;
        } else if (strcmp(argv[i], "--python") == 0 && i + 1 < argc) {
            python = argv[++i];
        } else if (strncmp(argv[i], "--python=", 9) == 0) {
            python = argv[i] + 9;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "arbiter migrate: unknown option '%s'\n", argv[i]);
            migrate_usage(stderr);
            return EXIT_USAGE;
        } else if (path) {
            fprintf(stderr, "arbiter migrate: one CONFIG at a time ('%s' after '%s')\n", argv[i], path);
            return EXIT_USAGE;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        fprintf(stderr, "arbiter migrate: missing CONFIG, the gunicorn.conf.py to convert\n");
        migrate_usage(stderr);
        return EXIT_USAGE;
    }
    char default_python[PATH_MAX];
    if (!python) {
        config_default_python(environ, default_python, sizeof default_python);
        python = default_python;
    }
    char err[CONFIG_ERROR_MAX];
    json_t *answer = NULL;
    if (migrate_evaluate(path, python, &answer, err, sizeof err) != 0) {
        fprintf(stderr, "arbiter migrate: %s\n", err);
        return EXIT_USAGE;
    }
    json_t *options = json_object_get(answer, "options");
    size_t unmapped, warnings;
    migrate_print_lines("", json_object_get(answer, "lines"), &unmapped, &warnings);
    char *text = json_dumps(options, JSON_INDENT(2));
    if (text)
        printf("%s\n", text);
    free(text);
    fprintf(stderr, "arbiter migrate: %s: %zu option%s for --config; %zu unmapped, %zu warning%s%s\n", path,
            json_object_size(options), json_object_size(options) == 1 ? "" : "s", unmapped, warnings,
            warnings == 1 ? "" : "s",
            unmapped || warnings ? ": resolve each line above" : ": everything maps");
    json_decref(answer);
    return unmapped || warnings ? EXIT_RUNTIME_FAILURE : EXIT_CLEAN;
}
