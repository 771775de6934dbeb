/* ctl.c - `arbiter ctl`: sends one command to a running arbiter and shows the answer.
 *
 * A blocking client: connect, write one line, wait (poll with a deadline) for one line back.
 * Commands that change the pool are answered by the arbiter only once the change is complete, so
 * `ExecReload=arbiter ctl reload` returns when the reload is done and fails when it failed.
 * `stop` additionally waits until the arbiter's pid is gone. Exit status: 0 done, 1 the arbiter
 * refused or the change failed (the reason is printed), 2 usage error. */
#define _GNU_SOURCE
#include "ctl.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "autoscale_policy.h"
#include "config.h"
#include "control.h"

#define CTL_REPLY_MAX (4u << 20)
#define CTL_PATH_MAX 108 /* sizeof sockaddr_un.sun_path */

struct ctl_options {
    const char *control;
    const char *name;
    bool json;
    bool wait;
    bool quick;
    bool live, all;
    double timeout;
};

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool ctl_quiet; /* while polling a re-executing arbiter: a refused or closed connection is expected */

static int ctl_connect(const char *path) {
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof address.sun_path) {
        fprintf(stderr, "arbiter ctl: control socket path too long: %s\n", path);
        return -1;
    }
    strcpy(address.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "arbiter ctl: socket(): %s\n", strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        if (!ctl_quiet)
            fprintf(stderr, "arbiter ctl: cannot connect to the arbiter at %s: %s.\nIs it running? Pass --control PATH "
                        "(or set ARBITER_CONTROL) to the path it logged as 'control socket'.\n",
                path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends request as one line. 0 when sent; 1 when the arbiter hung up first (*send_error says why: its
 * reason, busy, may be waiting to be read); -1 after printing why it could not be sent. */
static int ctl_send(int fd, json_t *request, int *send_error) {
    char *text = json_dumps(request, JSON_COMPACT);
    if (!text)
        return -1;
    size_t length = strlen(text);
    text[length] = '\n'; /* json_dumps' NUL becomes the line end; length + 1 bytes are sent */
    size_t sent = 0;
    int rc = 0;
    while (sent < length + 1) {
        ssize_t n = send(fd, text + sent, length + 1 - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            *send_error = errno;
            rc = 1;
            break;
        }
        if (n <= 0) {
            fprintf(stderr, "arbiter ctl: cannot send the request: %s\n", strerror(errno));
            rc = -1;
            break;
        }
        sent += (size_t)n;
    }
    free(text);
    return rc;
}

/* Makes room in the reply buffer when it is full; false (with a message when too large) if it cannot. */
static bool ctl_make_room(char **buffer, size_t *capacity, size_t used) {
    if (used < *capacity)
        return true;
    if (*capacity >= CTL_REPLY_MAX) {
        fprintf(stderr, "arbiter ctl: reply larger than %u bytes\n", CTL_REPLY_MAX);
        return false;
    }
    char *bigger = realloc(*buffer, *capacity * 2);
    if (!bigger)
        return false;
    *buffer = bigger;
    *capacity *= 2;
    return true;
}

/* Says why the deadline passed without a reply. */
static void ctl_report_no_reply(double timeout, int send_error) {
    if (send_error)
        fprintf(stderr, "arbiter ctl: the arbiter refused the request (%s) and sent no reason; try again\n",
                strerror(send_error));
    else
        fprintf(stderr, "arbiter ctl: no reply within %.0f s; the arbiter may still be working on it "
                        "(check `arbiter ctl status`)\n", timeout);
}

/* Says why the arbiter closed the connection (recv returned n: 0 or -1) without a reply. */
static void ctl_report_closed(ssize_t n, int send_error) {
    if (ctl_quiet)
        return;
    if (send_error)
        fprintf(stderr, "arbiter ctl: the arbiter closed the connection before reading the request (%s): it "
                        "may have too many control clients at once (busy); try again\n", strerror(send_error));
    else
        fprintf(stderr, "arbiter ctl: the arbiter closed the connection without a reply%s%s\n", n < 0 ? ": " : "",
                n < 0 ? strerror(errno) : "");
}

/* Reads one reply line within the deadline (1 s after a refused send); NULL with a message printed. */
static json_t *ctl_receive(int fd, double timeout, int send_error) {
    size_t capacity = 65536, used = 0;
    char *buffer = malloc(capacity);
    double deadline = now_seconds() + (send_error ? 1.0 : timeout);
    json_t *reply = NULL;
    while (buffer) {
        char *newline = memchr(buffer, '\n', used);
        if (newline) {
            json_error_t error;
            reply = json_loadb(buffer, (size_t)(newline - buffer), 0, &error);
            if (!reply)
                fprintf(stderr, "arbiter ctl: the arbiter sent a reply that is not JSON: %s\n", error.text);
            break;
        }
        double left = deadline - now_seconds();
        if (left <= 0) {
            ctl_report_no_reply(timeout, send_error);
            break;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(left * 1000) + 1) <= 0) /* EINTR or nothing yet: the deadline is checked above */
            continue;
        if (!ctl_make_room(&buffer, &capacity, used))
            break;
        ssize_t n = recv(fd, buffer + used, capacity - used, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ctl_report_closed(n, send_error);
            break;
        }
        used += (size_t)n;
    }
    free(buffer);
    return reply;
}

/* Sends request, returns the parsed reply or NULL (with a message printed). */
static json_t *ctl_exchange(int fd, json_t *request, double timeout) {
    int send_error = 0;
    if (ctl_send(fd, request, &send_error) < 0)
        return NULL;
    return ctl_receive(fd, timeout, send_error);
}

static void format_duration(double seconds, char *out, size_t size) {
    if (seconds < 60)
        snprintf(out, size, "%.0fs", seconds);
    else if (seconds < 3600)
        snprintf(out, size, "%.0fm%02.0fs", floor(seconds / 60), fmod(seconds, 60));
    else if (seconds < 86400)
        snprintf(out, size, "%.0fh%02.0fm", floor(seconds / 3600), floor(fmod(seconds, 3600) / 60));
    else
        snprintf(out, size, "%.0fd%02.0fh", floor(seconds / 86400), floor(fmod(seconds, 86400) / 3600));
}

static void format_bytes(json_int_t bytes, char *out, size_t size) {
    if (bytes <= 0)
        snprintf(out, size, "-");
    else if (bytes < (1 << 20))
        snprintf(out, size, "%.0fK", (double)bytes / 1024);
    else
        snprintf(out, size, "%.1fM", (double)bytes / 1048576);
}

/* "autoscale 2..8, last: up 2 -> 3 (lag) 12s ago" or "autoscale off". */
static void ctl_print_autoscale(json_t *autoscale) {
    if (!json_is_object(autoscale))
        return;
    if (!json_is_true(json_object_get(autoscale, "enabled"))) {
        printf("autoscale off\n");
        return;
    }
    printf("autoscale %lld..%lld", (long long)json_integer_value(json_object_get(autoscale, "min")),
           (long long)json_integer_value(json_object_get(autoscale, "max")));
    json_t *signals = json_object_get(autoscale, "signals");
    printf(" (queue %.1f, busy %.2f, lag %.3f s)", json_number_value(json_object_get(signals, "queue")),
           json_number_value(json_object_get(signals, "busy")), json_number_value(json_object_get(signals, "lag_s")));
    json_t *last = json_object_get(autoscale, "last_decision");
    if (json_is_object(last)) {
        char ago[32];
        format_duration(json_number_value(json_object_get(last, "seconds_ago")), ago, sizeof ago);
        printf(", last: %s %lld -> %lld (%s) %s ago", json_string_value(json_object_get(last, "action")),
               (long long)json_integer_value(json_object_get(last, "from")),
               (long long)json_integer_value(json_object_get(last, "to")), json_string_value(json_object_get(last, "reason")),
               ago);
    }
    printf("\n");
}

static void ctl_print_status(json_t *reply) {
    char uptime[32];
    format_duration(json_number_value(json_object_get(reply, "uptime_s")), uptime, sizeof uptime);
    printf("%s (pid %lld) %s: %lld/%lld workers ready, generation %lld, up %s, %lld reloads\n",
           json_string_value(json_object_get(reply, "name")), (long long)json_integer_value(json_object_get(reply, "pid")),
           json_string_value(json_object_get(reply, "state")),
           (long long)json_integer_value(json_object_get(reply, "ready_workers")),
           (long long)json_integer_value(json_object_get(reply, "target_workers")),
           (long long)json_integer_value(json_object_get(reply, "generation")), uptime,
           (long long)json_integer_value(json_object_get(reply, "reloads")));
    json_t *reload = json_object_get(reply, "reload");
    const char *failure = json_string_value(json_object_get(reload, "failure"));
    if (failure)
        printf("last reload (generation %lld) failed: %s\n", (long long)json_integer_value(json_object_get(reload, "generation")),
               failure);
    json_t *zygote = json_object_get(reply, "zygote");
    if (json_is_object(zygote)) {
        char pss[16];
        format_bytes(json_integer_value(json_object_get(zygote, "memory_pss_bytes")), pss, sizeof pss);
        printf("zygote pid %lld %s, generation %lld, app imported in %.2f s, PSS %s, %lld forks\n",
               (long long)json_integer_value(json_object_get(zygote, "pid")),
               json_string_value(json_object_get(zygote, "state")),
               (long long)json_integer_value(json_object_get(zygote, "generation")),
               json_number_value(json_object_get(zygote, "import_seconds")), pss,
               (long long)json_integer_value(json_object_get(zygote, "forks")));
    } else if (json_is_string(json_object_get(reply, "spawner")) &&
               strcmp(json_string_value(json_object_get(reply, "spawner")), "fork") == 0) {
        printf("zygote: none running (restarting)\n");
    }
    json_t *autoscale = json_object_get(reply, "autoscale");
    if (json_is_true(json_object_get(autoscale, "enabled")) || json_is_object(json_object_get(autoscale, "last_decision")))
        ctl_print_autoscale(autoscale);
    printf("%-4s %-8s %-10s %-4s %-8s %9s %8s %9s %9s  %s\n", "ID", "PID", "STATE", "GEN", "UPTIME", "REQUESTS",
           "RESTARTS", "PSS", "RSS", "LAST EXIT");
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(reply, "workers"), i, w) {
        char pss[16], rss[16], pid[16];
        format_duration(json_number_value(json_object_get(w, "uptime_s")), uptime, sizeof uptime);
        format_bytes(json_integer_value(json_object_get(w, "memory_pss_bytes")), pss, sizeof pss);
        format_bytes(json_integer_value(json_object_get(w, "memory_rss_bytes")), rss, sizeof rss);
        json_t *pid_json = json_object_get(w, "pid");
        if (json_is_integer(pid_json))
            snprintf(pid, sizeof pid, "%lld", (long long)json_integer_value(pid_json));
        else
            snprintf(pid, sizeof pid, "-");
        const char *last_exit = json_string_value(json_object_get(w, "last_exit"));
        printf("%-4lld %-8s %-10s %-4lld %-8s %9lld %8lld %9s %9s  %s\n", (long long)json_integer_value(json_object_get(w, "id")),
               pid, json_string_value(json_object_get(w, "state")), (long long)json_integer_value(json_object_get(w, "generation")),
               json_is_integer(pid_json) ? uptime : "-", (long long)json_integer_value(json_object_get(w, "requests")),
               (long long)json_integer_value(json_object_get(w, "restarts")), pss, rss, last_exit ? last_exit : "");
    }
}

/* After `upgrade` was accepted: the arbiter re-executes; wait until the new image answers status
 * with one more upgrade, and say what changed. */
static int ctl_wait_for_upgrade(const char *path, json_t *accepted, double timeout, bool quiet) {
    json_int_t before = json_integer_value(json_object_get(accepted, "upgrades"));
    double deadline = now_seconds() + timeout;
    while (now_seconds() < deadline) {
        ctl_quiet = true;
        int fd = ctl_connect(path);
        json_t *status = NULL;
        if (fd >= 0) {
            json_t *request = json_pack("{s:s}", "cmd", "status");
            status = ctl_exchange(fd, request, 5);
            json_decref(request);
            close(fd);
        }
        ctl_quiet = false;
        if (status && json_integer_value(json_object_get(status, "upgrades")) > before &&
            strcmp(json_string_value(json_object_get(status, "state")) ?: "", "running") == 0) {
            if (!quiet)
                printf("upgraded in place: arbiter %s (build %s) -> %s (build %s), pid %lld, %lld workers kept\n",
                       json_string_value(json_object_get(status, "previous_version")),
                       json_string_value(json_object_get(status, "previous_build")),
                       json_string_value(json_object_get(status, "version")),
                       json_string_value(json_object_get(status, "build")),
                       (long long)json_integer_value(json_object_get(status, "pid")),
                       (long long)json_array_size(json_object_get(status, "workers")));
            json_decref(status);
            return 0;
        }
        json_decref(status);
        poll(NULL, 0, 100);
    }
    fprintf(stderr, "arbiter ctl upgrade: the arbiter did not answer as upgraded within %.0f s; see its log\n", timeout);
    return 1;
}

/* After `stop` was accepted: wait until the arbiter's pid is gone. */
static int ctl_wait_for_exit(pid_t pid, double timeout) {
    double deadline = now_seconds() + timeout;
    while (kill(pid, 0) == 0 || errno == EPERM) {
        if (now_seconds() > deadline) {
            fprintf(stderr, "arbiter ctl stop: the arbiter (pid %d) is still running after %.0f s\n", (int)pid, timeout);
            return 1;
        }
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    return 0;
}

/* ---- the commands ---- */

/* "N" or "+N"/"-N": a whole number, else a message naming what it should be. */
static int parse_whole_number(const char *command, const char *argument, const char *hint, long long *value) {
    char *end;
    errno = 0;
    *value = strtoll(argument, &end, 10);
    if (errno || *end || !*argument) {
        fprintf(stderr, "arbiter ctl %s: '%s' is not a whole number from 1 to %d%s\n", command, argument,
                CONFIG_MAX_WORKERS_LIMIT, hint);
        return -1;
    }
    return 0;
}

static int scale_argument(json_t *request, const char *argument) {
    long long value;
    if (parse_whole_number("scale", argument, ", or +N/-N", &value) != 0)
        return -1;
    bool relative = argument[0] == '+' || argument[0] == '-';
    json_object_set_new(request, relative ? "delta" : "workers", json_integer(value));
    return 0;
}

static int recycle_argument(json_t *request, const char *argument) {
    long long value;
    if (parse_whole_number("recycle", argument, " (a worker id shown by status)", &value) != 0)
        return -1;
    json_object_set_new(request, "id", json_integer(value));
    return 0;
}

static int autoscale_argument(json_t *request, const char *argument) {
    unsigned min, max;
    char err[160];
    if (strcmp(argument, "off") == 0) {
        json_object_set_new(request, "enabled", json_false());
        return 0;
    }
    if (autoscale_parse_range(argument, CONFIG_MAX_WORKERS_LIMIT, &min, &max, err, sizeof err) != 0) {
        fprintf(stderr, "arbiter ctl autoscale: %s, or off\n", err);
        return -1;
    }
    json_object_set_new(request, "min", json_integer(min));
    json_object_set_new(request, "max", json_integer(max));
    return 0;
}

static void status_print(json_t *reply, const struct ctl_options *options) {
    (void)options;
    ctl_print_status(reply);
}

static void scale_print(json_t *reply, const struct ctl_options *options) {
    printf("%lld workers%s\n", (long long)json_integer_value(json_object_get(reply, "target_workers")),
           options->wait ? " ready" : " requested");
}

static void reload_print(json_t *reply, const struct ctl_options *options) {
    printf(options->wait ? "reloaded: generation %lld\n" : "reload started: generation %lld\n",
           (long long)json_integer_value(json_object_get(reply, "generation")));
}

static void recycle_print(json_t *reply, const struct ctl_options *options) {
    printf("worker %lld recycled%s\n", (long long)json_integer_value(json_object_get(reply, "id")),
           options->wait ? "" : " (in progress)");
}

static void stop_print(json_t *reply, const struct ctl_options *options) {
    (void)reply, (void)options;
    printf("stopped\n");
}

static void autoscale_print(json_t *reply, const struct ctl_options *options) {
    (void)options;
    ctl_print_autoscale(json_object_get(reply, "autoscale"));
}

static void upgrade_print(json_t *reply, const struct ctl_options *options) {
    (void)reply;
    if (!options->wait) /* waited for: ctl_wait_for_upgrade said what changed */
        printf("upgrade started (pre-flight passed)\n");
}

static void health_print(json_t *reply, const struct ctl_options *options) {
    (void)options;
    printf("%s\n", json_string_value(json_object_get(reply, "reason")));
}

static int stop_wait(const char *path, json_t *reply, const struct ctl_options *options) {
    (void)path;
    return ctl_wait_for_exit((pid_t)json_integer_value(json_object_get(reply, "pid")), options->timeout);
}

static int upgrade_wait(const char *path, json_t *reply, const struct ctl_options *options) {
    return ctl_wait_for_upgrade(path, reply, options->timeout, options->json);
}

/* The client's half of a control command (the arbiter's half is control_commands.c's table). */
struct ctl_command {
    const char *name;
    const char *usage; /* its lines in `arbiter ctl --help` */
    /* Its one argument into the request, -1 after printing why it is wrong; NULL: takes none. */
    int (*argument)(json_t *request, const char *argument);
    const char *missing; /* the usage error when the argument is missing */
    bool quick;          /* sends --quick */
    bool probe;          /* takes --live and --all */
    void (*print)(json_t *reply, const struct ctl_options *options); /* the success line(s) without --json */
    /* With --wait (the default), after the arbiter accepted: waits for what it started; the exit code. */
    int (*wait)(const char *path, json_t *reply, const struct ctl_options *options);
};

static const struct ctl_command ctl_commands[] = {
    {"status", "  status              the workers: id, pid, state, uptime, requests, restarts, memory\n", NULL, NULL,
     false, false, status_print, NULL},
    {"scale", "  scale N|+N|-N       set the number of workers; waits until they are ready\n", scale_argument,
     "needs N, +N or -N (e.g. scale 8, scale +2)", false, false, scale_print, NULL},
    {"reload", "  reload              replace every worker, each new one ready before the old one drains\n", NULL,
     NULL, false, false, reload_print, NULL},
    {"recycle", "  recycle ID          replace one worker the same way\n", recycle_argument,
     "needs a worker ID (see ctl status)", false, false, recycle_print, NULL},
    {"stop", "  stop [--quick]      stop gracefully (or quickly); waits until the arbiter has exited\n", NULL, NULL,
     true, false, stop_print, stop_wait},
    {"autoscale", "  autoscale MIN:MAX   scale between MIN and MAX workers on load; autoscale off: keep the count\n",
     autoscale_argument, "needs MIN:MAX or off (e.g. autoscale 2:8)", false, false, autoscale_print, NULL},
    {"upgrade",
     "  upgrade             re-execute the installed arbiter binary in place (same pid, sockets and\n"
     "                      workers); waits until it is back\n",
     NULL, NULL, false, false, upgrade_print, upgrade_wait},
    {"health",
     "  health [--all]      exit 0 while serving with at least --min-ready (--all: every) worker\n"
     "                      ready and not stopping, else 1 with the reason (as /healthz)\n"
     "  health --live       exit 0 while the arbiter answers at all, draining included\n"
     "                      (for liveness probes, which must not kill a draining container)\n",
     NULL, NULL, false, true, health_print, NULL},
};

/* The row for a command the arbiter knows; a command with no row takes no argument and prints nothing. */
static const struct ctl_command *ctl_find_command(const char *name) {
    static const struct ctl_command plain = {0};
    for (size_t i = 0; i < sizeof ctl_commands / sizeof ctl_commands[0]; i++)
        if (strcmp(ctl_commands[i].name, name) == 0)
            return &ctl_commands[i];
    return &plain;
}

static void ctl_usage(FILE *out) {
    fprintf(out, "usage: arbiter ctl [--control PATH] [--name NAME] [--json] [--no-wait] [--timeout S] COMMAND\n\n"
                 "commands:\n");
    for (size_t i = 0; i < sizeof ctl_commands / sizeof ctl_commands[0]; i++)
        fputs(ctl_commands[i].usage, out);
    fprintf(out, "\nThe control socket is --control PATH, else $ARBITER_CONTROL, else $RUNTIME_DIRECTORY/NAME.sock,\n"
                 "else /run/arbiter/NAME.sock for root or $XDG_RUNTIME_DIR/arbiter-NAME.sock (NAME: arbiter).\n");
}

/* Builds the request from COMMAND [ARG]; returns NULL after printing a usage error. */
static json_t *ctl_build_request(const char *command, const char *argument, const struct ctl_options *options) {
    const struct ctl_command *row = ctl_find_command(command);
    json_t *request = json_pack("{s:s}", "cmd", command);
    if (!request)
        return NULL;
    if ((row->argument != NULL) != (argument != NULL)) {
        fprintf(stderr, "arbiter ctl %s: %s\n", command, row->argument ? row->missing : "takes no argument");
        goto fail;
    }
    if (argument && row->argument(request, argument) != 0)
        goto fail;
    if (row->quick)
        json_object_set_new(request, "quick", json_boolean(options->quick));
    if ((options->live || options->all) && !row->probe) {
        fprintf(stderr, "arbiter ctl %s: --%s is an option of health only\n", command, options->live ? "live" : "all");
        goto fail;
    }
    if (options->live)
        json_object_set_new(request, "live", json_true());
    if (options->all)
        json_object_set_new(request, "all", json_true());
    json_object_set_new(request, "wait", json_boolean(options->wait));
    json_object_set_new(request, "timeout", json_real(options->timeout));
    return request;
fail:
    json_decref(request);
    return NULL;
}

/* ---- the command line ---- */

#define CTL_CONTINUE (-1) /* ctl_parse_options: go on */

/* One option getopt_long returned; CTL_CONTINUE, or the exit code. */
static int ctl_apply_option(int ch, struct ctl_options *options, char **argv) {
    switch (ch) {
    case 'c': options->control = optarg; break;
    case 'n': options->name = optarg; break;
    case 'j': options->json = true; break;
    case 'W': options->wait = false; break;
    case 'q': options->quick = true; break;
    case 'L': options->live = true; break;
    case 'A': options->all = true; break;
    case 't': {
        char *end;
        errno = 0;
        options->timeout = strtod(optarg, &end);
        if (errno || end == optarg || *end || !(options->timeout > 0) || options->timeout > 86400) {
            fprintf(stderr, "arbiter ctl: --timeout '%s' is not a number of seconds above 0 and at most 86400\n", optarg);
            return 2;
        }
        break;
    }
    case 'h': ctl_usage(stdout); return 0;
    default:
        fprintf(stderr, "arbiter ctl: unknown option '%s'\n", argv[optind - 1]);
        ctl_usage(stderr);
        return 2;
    }
    return CTL_CONTINUE;
}

/* Options into options, operands into positional[3] (*count may exceed 3); CTL_CONTINUE or the exit code. */
static int ctl_parse_options(int argc, char **argv, struct ctl_options *options, const char *positional[3],
                             size_t *count) {
    static const struct option long_options[] = {
        {"control", required_argument, NULL, 'c'}, {"name", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},          {"no-wait", no_argument, NULL, 'W'},
        {"quick", no_argument, NULL, 'q'},         {"timeout", required_argument, NULL, 't'},
        {"live", no_argument, NULL, 'L'},          {"all", no_argument, NULL, 'A'},
        {"help", no_argument, NULL, 'h'},          {0, 0, 0, 0},
    };
    optind = 0;
    opterr = 0;
    /* '-' keeps operands in order and lets "scale -2" through: a dash followed by a digit is a number. */
    while (optind < argc) {
        bool number = argv[optind][0] == '-' && (argv[optind][1] >= '0' && argv[optind][1] <= '9');
        int ch = number ? -1 : getopt_long(argc, argv, "+h", long_options, NULL);
        if (ch == -1 && optind >= argc) /* `arbiter ctl` alone, or ending in --: no operand left */
            break;
        if (ch == -1) {
            if (*count < 3)
                positional[*count] = argv[optind];
            (*count)++;
            optind++;
            continue;
        }
        int code = ctl_apply_option(ch, options, argv);
        if (code != CTL_CONTINUE)
            return code;
    }
    return CTL_CONTINUE;
}

/* The control socket's path into path (CTL_PATH_MAX bytes); CTL_CONTINUE or the exit code. */
static int ctl_socket_path(const struct ctl_options *options, char path[CTL_PATH_MAX]) {
    if (options->control) {
        if (strlen(options->control) >= CTL_PATH_MAX) {
            fprintf(stderr, "arbiter ctl: --control %s: the path is too long (at most %zu bytes)\n", options->control,
                    (size_t)CTL_PATH_MAX - 1);
            return 2;
        }
        snprintf(path, CTL_PATH_MAX, "%s", options->control);
        return CTL_CONTINUE;
    }
    char err[512];
    if (control_default_path(options->name, path, CTL_PATH_MAX, err, sizeof err) != 0) {
        fprintf(stderr, "arbiter ctl: %s\n", err);
        return 1;
    }
    return CTL_CONTINUE;
}

/* The reply shown, and what was started waited for; the exit code. */
static int ctl_finish(const char *command, const char *path, json_t *reply, const struct ctl_options *options) {
    const struct ctl_command *row = ctl_find_command(command);
    int code = 0;
    if (!json_is_true(json_object_get(reply, "ok"))) {
        json_t *error = json_object_get(reply, "error");
        if (!options->json)
            fprintf(stderr, "arbiter ctl %s: %s (%s)\n", command, json_string_value(json_object_get(error, "message")),
                    json_string_value(json_object_get(error, "code")));
        code = 1;
    } else if (row->wait && options->wait) {
        code = row->wait(path, reply, options);
    }
    if (options->json) {
        char *text = json_dumps(reply, JSON_COMPACT);
        if (text)
            puts(text);
        free(text);
    } else if (code == 0 && row->print) {
        row->print(reply, options);
    }
    return code;
}

int ctl_main(int argc, char **argv) {
    struct ctl_options options = {.wait = true, .timeout = CONTROL_DEFAULT_TIMEOUT_S, .name = "arbiter"};
    const char *positional[3] = {0};
    size_t positional_count = 0;
    int code = ctl_parse_options(argc, argv, &options, positional, &positional_count);
    if (code != CTL_CONTINUE)
        return code;
    if (positional_count == 0 || positional_count > 2) {
        fprintf(stderr, positional_count ? "arbiter ctl: too many arguments\n" : "arbiter ctl: missing COMMAND\n");
        ctl_usage(stderr);
        return 2;
    }
    const char *command = positional[0];
    if (!control_find_command(command)) {
        fprintf(stderr, "arbiter ctl: unknown command '%s'; valid commands: %s\n", command, control_command_names());
        return 2;
    }
    json_t *request = ctl_build_request(command, positional_count > 1 ? positional[1] : NULL, &options);
    if (!request)
        return 2;
    char path[CTL_PATH_MAX];
    int fd = -1;
    if ((code = ctl_socket_path(&options, path)) == CTL_CONTINUE && (fd = ctl_connect(path)) < 0)
        code = 1;
    if (code != CTL_CONTINUE) {
        json_decref(request);
        return code;
    }
    json_t *reply = ctl_exchange(fd, request, options.timeout + 5);
    close(fd);
    json_decref(request);
    if (!reply)
        return 1;
    code = ctl_finish(command, path, reply, &options);
    json_decref(reply);
    return code;
}
