/* main.c - `arbiter run|check|ctl|migrate`, --version, --help: picks the subcommand, and wraps `run`
 * in what is the process's own (the --pid file, the notices of accepted gunicorn flags). */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "daemon.h"
#include "version.h"
#include "config.h"
#include "ctl.h"
#include "migrate.h"
#include "pidfile.h"
#include "privileges.h"

extern char **environ;

static void print_usage(FILE *out) {
    fprintf(out,
            "usage: arbiter run [OPTIONS] APP       serve APP (module:attribute) with N uvicorn workers\n"
            "       arbiter check [OPTIONS] APP     boot one worker through lifespan startup; exit 0 or 3\n"
            "       arbiter ctl [--control PATH] [--json] COMMAND\n"
            "                                       status | scale N|+N|-N | reload | stop [--quick] | recycle ID\n"
            "                                       | health [--all|--live] | autoscale MIN:MAX | autoscale off\n"
            "                                       | upgrade\n"
            "       arbiter migrate GUNICORN_CONF_PY [--python PATH]\n"
            "                                       print a gunicorn config as arbiter's --config JSON; exit 0, 1 or 2\n"
            "       arbiter --version | --help\n\n"
            "`arbiter run --help` lists every option.\n");
}

static int run_or_check(int argc, char **argv) {
    struct config config;
    char err[CONFIG_ERROR_MAX];
    enum config_result result = config_parse(&config, argc, argv, environ, err, sizeof err);
    if (result != CONFIG_OK) {
        if (result == CONFIG_USAGE_ERROR)
            fprintf(stderr, "arbiter %s: %s\nusage: arbiter %s [OPTIONS] APP\nTry 'arbiter %s --help' for every option.\n",
                    argv[0], err, argv[0], argv[0]);
        config_free(&config);
        return result == CONFIG_EXIT_OK ? EXIT_CLEAN : EXIT_USAGE;
    }
    for (size_t i = 0; i < config.notices.count; i++)
        fprintf(stderr, "arbiter %s: %s\n", argv[0], config.notices.items[i]);
    bool pid_file = config.pid_file && strcmp(config.command, "run") == 0;
    if (pid_file && pidfile_write(config.pid_file, err, sizeof err) != 0) {
        fprintf(stderr, "arbiter %s: %s\n", argv[0], err);
        config_free(&config);
        return EXIT_USAGE;
    }
    int code = daemon_run(&config); /* an in-place upgrade never returns: the new image keeps the file */
    if (pid_file)
        pidfile_remove(config.pid_file);
    config_free(&config);
    return code;
}

int main(int argc, char **argv) {
    upgrade_set_argv(argc, argv);
    config_set_python_loader(migrate_load_for_run);
    if (argc < 2) {
        print_usage(stderr);
        return EXIT_USAGE;
    }
    const char *command = argv[1];
    if (strcmp(command, "run") == 0 || strcmp(command, "check") == 0)
        return run_or_check(argc - 1, argv + 1);
    if (strcmp(command, "ctl") == 0)
        return ctl_main(argc - 1, argv + 1);
    if (strcmp(command, "migrate") == 0)
        return migrate_main(argc - 1, argv + 1);
    if (strcmp(command, "upgrade-check") == 0) /* the pre-flight of an in-place upgrade (upgrade.c) */
        return upgrade_preflight_main(argc - 1, argv + 1);
    if (strcmp(command, PRIVILEGES_EXEC_COMMAND) == 0)
        return privileges_exec_worker(argc - 1, argv + 1);
    if (strcmp(command, "--version") == 0 || strcmp(command, "-V") == 0) {
        printf("arbiter %s\n", ARBITER_VERSION);
        return EXIT_CLEAN;
    }
    if (strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0 || strcmp(command, "help") == 0) {
        print_usage(stdout);
        return EXIT_CLEAN;
    }
    fprintf(stderr, "arbiter: unknown command '%s'\n", command);
    print_usage(stderr);
    return EXIT_USAGE;
}
