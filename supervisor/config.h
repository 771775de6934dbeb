/* config.h - everything `arbiter run|check` is told, from flags, environment and --config file. */
#ifndef ARBITER_CONFIG_H
#define ARBITER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "autoscale_policy.h"
#include "listener.h"
#include "log.h"

#define CONFIG_ERROR_MAX 512
#define CONFIG_MAX_WORKERS_LIMIT 1024
/* --max-requests and --max-requests-jitter: both at most this, so their sum fits an unsigned. */
#define CONFIG_MAX_REQUESTS_LIMIT 1000000000u
/* --max-memory: 16 TiB, far above any machine's memory, far below what a double or uint64 holds. */
#define CONFIG_MAX_MEMORY_LIMIT 17592186044416.0

/* A growable, bounded list of owned strings (KEY=VALUE pairs, forwarded argv). */
struct string_list {
    char **items;
    size_t count;
    size_t capacity;
};

/* How the workers share a listener's accept queue (--balance). */
enum balance_mode {
    BALANCE_DEFAULT, /* not given: even, or kernel with --reuse-port */
    BALANCE_EVEN,    /* the shim accepts, holding off while it has more than its share of connections */
    BALANCE_KERNEL,  /* uvicorn's own accept loop: whoever wakes first takes what is queued */
};
const char *balance_mode_name(enum balance_mode mode);

struct config {
    const char *command; /* "run" or "check" */
    char *app;
    unsigned workers;
    unsigned max_workers;
    struct bind_address binds[LISTENER_MAX];
    size_t bind_count;
    unsigned socket_mode;
    char *python;
    char *chdir;
    char *name;
    char *control_path;
    char *control_group;
    double timeout;
    double boot_timeout;
    double graceful_timeout;
    double lame_duck;
    unsigned max_requests;
    unsigned max_requests_jitter;
    double max_lifetime;
    uint64_t max_memory;
    bool reuse_port;
    unsigned backlog;
    char *user;
    char *group;
    char *metrics;
    unsigned min_ready;
    enum log_level log_level;
    enum log_format log_format;
    char *log_file;
    bool log_to_stdout; /* --log-file -: stderr joins stdout, for container log collectors */
    bool access_log;
    bool factory;
    bool preload;        /* --preload: the fork server spawns the workers */
    unsigned max_surge;  /* 0: 25% of the workers, at least 1 */
    enum balance_mode balance;
    struct autoscale_policy autoscale; /* --autoscale MIN:MAX and its knobs */
    struct string_list env;     /* KEY=VALUE from --env and --env-file, in order */
    struct string_list forward; /* uvicorn options passed to every worker */
    char *pid_file;             /* --pid (gunicorn's): written at start, removed at exit */
    struct string_list notices; /* accepted-but-ignored flags (-k, --worker-tmp-dir): told once at start */
};

enum config_result { CONFIG_OK, CONFIG_EXIT_OK /* --help printed */, CONFIG_USAGE_ERROR };

/* Parses `arbiter run|check [OPTIONS] APP`: argv[0] is the subcommand. Defaults come from the
 * environment (WEB_CONCURRENCY, VIRTUAL_ENV, ARBITER_CONTROL, RUNTIME_DIRECTORY) given in envp.
 * On CONFIG_USAGE_ERROR, err says which flag or value is wrong and how to fix it. */
enum config_result config_parse(struct config *config, int argc, char **argv, char *const *envp,
                                char *err, size_t err_size);
void config_free(struct config *config);

/* How `--config FILE.py` (or gunicorn's `-c FILE.py`) becomes options: a gunicorn config evaluated by
 * the app's interpreter into the same JSON object a --config file holds (migrate.c provides it, so
 * config.c runs no process itself). Returns a new reference, or NULL with err set. Without a loader
 * a .py config is refused. */
struct json_t;
typedef struct json_t *(*config_python_loader_fn)(const char *path, const char *python, char *err, size_t err_size);
void config_set_python_loader(config_python_loader_fn loader);

/* Prints the option reference, generated from the option table. */
void config_print_help(const char *command);

/* Parses "512M", "2G", "1048576", "1.5GiB" into bytes. */
int config_parse_size(const char *text, uint64_t *bytes);
/* Parses "30", "2.5", "500ms", "1m" into seconds. */
int config_parse_seconds(const char *text, double *seconds);

/* Reads KEY=VALUE lines (comments, `export`, quotes) and appends them to list. */
int config_read_env_file(const char *path, struct string_list *list, char *err, size_t err_size);

int string_list_append(struct string_list *list, const char *value);
void string_list_free(struct string_list *list);

/* The interpreter used without --python: $VIRTUAL_ENV/bin/python, the binary's own venv, else python3. */
void config_default_python(char *const *envp, char *out, size_t size);

/* The directory of the running binary (/proc/self/exe). */
int config_executable_dir(char *out, size_t size);

/* The number of CPUs this process may run on (sched_getaffinity), at least 1. */
unsigned config_usable_cpus(void);

#endif
