/* upgrade.c - in-place binary upgrade (ctl upgrade, SIGUSR2): HAProxy's and Puma's model.
 *
 * gunicorn's USR2 forks a new master with a new pid, which systemd then kills with the old one's
 * cgroup (gunicorn #2856); nginx needs Type=forking and a PID file. Here the arbiter re-executes
 * itself: the pid does not change, so systemd's MAINPID, the notify socket and every worker's
 * parent stay valid, and no worker restarts.
 *
 * 1. Pre-flight: the binary now installed at our path runs as `arbiter upgrade-check RUN-ARGS`, with
 *    the state document we would hand over on an inherited fd. It must read that state's version and
 *    shape and accept our configuration; if not, the upgrade is refused with its words, and nothing
 *    changes.
 * 2. RELOADING=1 to systemd; the state document (daemon.c's daemon_save_state: listeners, control and metrics
 *    sockets, every worker with its pid, channel, counters and deadlines, the zygote) goes into a
 *    memfd; every fd it names is made inheritable; execve() of the same command line.
 * 3. The new image (daemon_run) finds ARBITER_UPGRADE_STATE_FD, adopts everything instead of
 *    binding and spawning, reaps whatever exited meanwhile, and sends READY=1.
 * A channel message a worker wrote during the exec waits in its socket and is read by the new image.
 */
#define _GNU_SOURCE
#include "upgrade.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "exits.h"
#include "notify.h"
#include "version.h"
#include "log.h"

extern char **environ;

static int saved_argc;
static char **saved_argv;

void upgrade_set_argv(int argc, char **argv) {
    saved_argc = argc;
    saved_argv = argv;
}

static const char *const notify_names[3] = {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"};

/* FNV-1a over the binary: two builds of the same version differ, and status says which runs. */
static void compute_build(const char *path, char out[17]) {
    uint64_t hash = 1469598103934665603ull;
    FILE *file = fopen(path, "rbe");
    if (file) {
        unsigned char buffer[65536];
        size_t n;
        while ((n = fread(buffer, 1, sizeof buffer, file)) > 0)
            for (size_t i = 0; i < n; i++)
                hash = (hash ^ buffer[i]) * 1099511628211ull;
        fclose(file);
    }
    snprintf(out, 17, "%016llx", (unsigned long long)hash);
}

void upgrade_init(struct upgrade *u, uv_loop_t *loop, struct reaper *reaper, struct notify *notify,
                  struct upgrade_hooks hooks) {
    memset(u, 0, sizeof *u);
    u->loop = loop;
    u->reaper = reaper;
    u->notify = notify;
    u->hooks = hooks;
    u->state_fd = -1;
    ssize_t n = readlink("/proc/self/exe", u->exe_path, sizeof u->exe_path - 1);
    u->exe_path[n > 0 ? n : 0] = '\0';
    char *deleted = strstr(u->exe_path, " (deleted)"); /* replaced under us before we even looked */
    if (deleted && deleted[10] == '\0')
        *deleted = '\0';
    compute_build("/proc/self/exe", u->build);
    for (size_t i = 0; i < 3; i++) {
        const char *value = getenv(notify_names[i]);
        snprintf(u->notify_env[i], sizeof u->notify_env[i], "%s", value ? value : "");
    }
    uv_timer_init(loop, &u->timer);
    u->timer.data = u;
}

bool upgrade_in_progress(const struct upgrade *u) { return u->phase != UPGRADE_IDLE; }

int upgrade_check_state_version(json_int_t version, char *err, size_t err_size) {
    if (version < 1 || version > UPGRADE_STATE_VERSION) {
        snprintf(err, err_size, "arbiter %s reads upgrade state versions 1 to %d, not %lld: upgrade to a newer arbiter, "
                 "or restart the service instead", ARBITER_VERSION, UPGRADE_STATE_VERSION, (long long)version);
        return -1;
    }
    return 0;
}

/* ---- the state document ---- */

static int state_write_memfd(json_t *state, char *err, size_t err_size) {
    char *text = json_dumps(state, JSON_COMPACT);
    if (!text) {
        snprintf(err, err_size, "out of memory writing the upgrade state");
        return -1;
    }
    int fd = memfd_create("arbiter-upgrade-state", 0); /* no MFD_CLOEXEC: the next image reads it */
    size_t length = strlen(text), written = 0;
    while (fd >= 0 && written < length) {
        ssize_t n = write(fd, text + written, length - written);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(fd);
            fd = -1;
            break;
        }
        written += (size_t)n;
    }
    free(text);
    if (fd < 0 || lseek(fd, 0, SEEK_SET) != 0) {
        snprintf(err, err_size, "cannot write the upgrade state to a memfd: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static json_t *state_read_fd(int fd, char *err, size_t err_size) {
    json_error_t error;
    FILE *file = fdopen(fd, "r");
    if (!file) {
        snprintf(err, err_size, "cannot read the upgrade state from fd %d: %s", fd, strerror(errno));
        close(fd);
        return NULL;
    }
    json_t *state = json_loadf(file, 0, &error);
    fclose(file);
    if (!state)
        snprintf(err, err_size, "the upgrade state is not valid JSON: %s (line %d)", error.text, error.line);
    return state;
}

static int state_fd_from_env(char *err, size_t err_size) {
    const char *text = getenv(UPGRADE_STATE_FD_ENV);
    if (!text || !*text)
        return -1;
    char *end;
    long fd = strtol(text, &end, 10);
    unsetenv(UPGRADE_STATE_FD_ENV); /* never passed on to workers */
    if (*end || fd < 3 || fd > INT32_MAX || fcntl((int)fd, F_GETFD) < 0) {
        snprintf(err, err_size, "%s=%s is not an open fd", UPGRADE_STATE_FD_ENV, text);
        return -2;
    }
    fcntl((int)fd, F_SETFD, FD_CLOEXEC);
    return (int)fd;
}

json_t *upgrade_take_state(char *err, size_t err_size) {
    err[0] = '\0';
    int fd = state_fd_from_env(err, err_size);
    if (fd < 0)
        return NULL;
    json_t *state = state_read_fd(fd, err, err_size);
    if (state && upgrade_check_state_version(json_integer_value(json_object_get(state, "state_version")), err, err_size) != 0) {
        json_decref(state);
        return NULL;
    }
    return state;
}

/* Every fd in the state is under "fd" or a key ending in "_fd" / "_fds" (a number or an array). */
static void state_set_inheritable(json_t *value, bool inheritable, bool is_fd) {
    if (json_is_integer(value) && is_fd) {
        int fd = (int)json_integer_value(value);
        if (fd >= 0) {
            int flags = fcntl(fd, F_GETFD);
            if (flags >= 0)
                fcntl(fd, F_SETFD, inheritable ? flags & ~FD_CLOEXEC : flags | FD_CLOEXEC);
        }
    } else if (json_is_array(value)) {
        size_t i;
        json_t *item;
        json_array_foreach(value, i, item) state_set_inheritable(item, inheritable, is_fd);
    } else if (json_is_object(value)) {
        const char *key;
        json_t *item;
        json_object_foreach(value, key, item) {
            size_t length = strlen(key);
            bool names_fd = strcmp(key, "fd") == 0 || (length > 3 && strcmp(key + length - 3, "_fd") == 0) ||
                            (length > 4 && strcmp(key + length - 4, "_fds") == 0);
            state_set_inheritable(item, inheritable, names_fd);
        }
    }
}

/* ---- the pre-flight ---- */

static void upgrade_finish(struct upgrade *u, const char *failure) {
    child_close(&u->child); /* its process handle closed at the spawn already; nothing to free */
    if (u->output_open) {
        uv_close((uv_handle_t *)&u->output, NULL);
        u->output_open = false;
    }
    if (u->state_fd >= 0) {
        close(u->state_fd);
        u->state_fd = -1;
    }
    uv_timer_stop(&u->timer);
    if (failure) {
        u->failed++;
        snprintf(u->failure, sizeof u->failure, "%s", failure);
        u->phase = UPGRADE_IDLE;
        log_error("upgrade_refused", "upgrade to %s refused: %s; arbiter %s keeps running as it was", u->exe_path,
                  failure, ARBITER_VERSION);
    }
    u->hooks.changed(u->hooks.data);
}

static void upgrade_exec(uv_timer_t *timer);

static void upgrade_preflight_done(struct upgrade *u) {
    if (!u->child.exited || !u->output_done || u->phase != UPGRADE_PREFLIGHT)
        return;
    while (u->output_length && (u->output_text[u->output_length - 1] == '\n' || u->output_text[u->output_length - 1] == ' '))
        u->output_length--;
    u->output_text[u->output_length] = '\0';
    if (u->term_signal || u->exit_status != 0) {
        char failure[sizeof u->failure];
        snprintf(failure, sizeof failure, "its pre-flight (%.200s upgrade-check) %s %d: %.380s", u->exe_path,
                 u->term_signal ? "was killed by signal" : "exited with", u->term_signal ? u->term_signal : (int)u->exit_status,
                 u->output_length ? u->output_text : "no message");
        upgrade_finish(u, failure);
        return;
    }
    log_info("upgrade_preflight", "pre-flight passed: %s", u->output_length ? u->output_text : "ok");
    u->phase = UPGRADE_EXEC_PENDING;
    upgrade_finish(u, NULL);
    /* Let the reply to `ctl upgrade` and any log line leave before the image is replaced. */
    uv_timer_start(&u->timer, upgrade_exec, 20, 0);
}

/* Started, not yet reaped, and not abandoned (upgrade_finish). */
static bool preflight_running(const struct upgrade *u) {
    return u->child.pid > 0 && !u->child.exited && !u->child.closing;
}

static void upgrade_on_exited(struct child *child, int64_t exit_status, int term_signal) {
    struct upgrade *u = child->data;
    u->exit_status = exit_status;
    u->term_signal = term_signal;
    upgrade_preflight_done(u);
}

static const struct child_ops preflight_child_ops = {.kind = "upgrade", .exited = upgrade_on_exited};

static void upgrade_on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
    struct upgrade *u = handle->data;
    (void)suggested;
    size_t room = sizeof u->output_text - 1 - u->output_length;
    static char discard[256];
    *buf = room ? uv_buf_init(u->output_text + u->output_length, (unsigned)room) : uv_buf_init(discard, sizeof discard);
}

static void upgrade_on_output(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    struct upgrade *u = stream->data;
    if (nread < 0) {
        uv_read_stop(stream);
        u->output_done = true;
        upgrade_preflight_done(u);
        return;
    }
    if (buf->base >= u->output_text && buf->base < u->output_text + sizeof u->output_text)
        u->output_length += (size_t)nread;
}

static void upgrade_on_preflight_deadline(uv_timer_t *timer) {
    struct upgrade *u = timer->data;
    if (u->phase != UPGRADE_PREFLIGHT)
        return;
    bool running = preflight_running(u);
    if (running)
        kill(u->child.pid, SIGKILL);
    char failure[128];
    snprintf(failure, sizeof failure, "its pre-flight did not answer within %u ms", UPGRADE_PREFLIGHT_MS);
    if (running)
        child_forget(&u->child); /* reaped as an orphan later */
    upgrade_finish(u, failure);
}

static int upgrade_start_preflight(struct upgrade *u, char *err, size_t err_size) {
    if (u->child.open_handles) { /* the last one's process handle closes on the next loop turn */
        snprintf(err, err_size, "the previous pre-flight is still closing; try again in a moment");
        return -1;
    }
    json_t *state = u->hooks.save(u->hooks.data);
    if (!state) {
        snprintf(err, err_size, "out of memory describing the running state");
        return -1;
    }
    u->state_fd = state_write_memfd(state, err, err_size);
    json_decref(state);
    if (u->state_fd < 0)
        return -1;
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
        snprintf(err, err_size, "socketpair() for the pre-flight's output failed: %s", strerror(errno));
        return -1;
    }
    char **argv = calloc((size_t)saved_argc + 3, sizeof *argv);
    char **env = NULL;
    size_t env_count = 0;
    while (environ[env_count])
        env_count++;
    env = calloc(env_count + 2, sizeof *env);
    if (!argv || !env) {
        free(argv);
        free(env);
        close(pair[0]);
        close(pair[1]);
        snprintf(err, err_size, "out of memory starting the pre-flight");
        return -1;
    }
    argv[0] = u->exe_path;
    argv[1] = "upgrade-check";
    for (int i = 2; i < saved_argc; i++) /* saved_argv[1] is "run": upgrade-check takes its place */
        argv[i] = saved_argv[i];
    memcpy(env, environ, env_count * sizeof *env);
    char state_env[64];
    snprintf(state_env, sizeof state_env, "%s=3", UPGRADE_STATE_FD_ENV);
    env[env_count] = state_env;
    struct child_spec spec = {.argv = argv, .env = env, .stdout_fd = pair[1], .fds = &u->state_fd, .fd_count = 1,
                              .channel_at = CHILD_NO_CHANNEL, .keep_session = true};
    u->output.data = u;
    u->output_done = false;
    u->output_length = 0;
    uv_pipe_init(u->loop, &u->output, 0);
    u->output_open = true;
    uv_pipe_open(&u->output, pair[0]);
    child_init(&u->child, &preflight_child_ops, u, u->loop, u->reaper, 0);
    char spawn_err[400];
    int pid = child_spawn(&u->child, &spec, -1, spawn_err, sizeof spawn_err);
    close(pair[1]);
    free(argv);
    free(env);
    if (pid < 0) {
        snprintf(err, err_size, "the pre-flight: %s", spawn_err);
        return -1;
    }
    child_started(&u->child, pid);
    uv_read_start((uv_stream_t *)&u->output, upgrade_on_alloc, upgrade_on_output);
    uv_timer_start(&u->timer, upgrade_on_preflight_deadline, UPGRADE_PREFLIGHT_MS, 0);
    return 0;
}

int upgrade_request(struct upgrade *u, const char *why, char *err, size_t err_size) {
    const char *busy = upgrade_in_progress(u) ? "an upgrade is already under way" : u->hooks.busy(u->hooks.data);
    u->attempts++;
    if (busy) {
        snprintf(err, err_size, "cannot upgrade now: %s; try again in a moment", busy);
        u->failed++;
        snprintf(u->failure, sizeof u->failure, "%s", err);
        return -1;
    }
    log_info("upgrade", "upgrade requested (%s): pre-flight of %s", why, u->exe_path);
    u->phase = UPGRADE_PREFLIGHT;
    if (upgrade_start_preflight(u, err, err_size) != 0) {
        upgrade_finish(u, err);
        return -1;
    }
    return 0;
}

/* ---- the exec ---- */

static void upgrade_exec(uv_timer_t *timer) {
    struct upgrade *u = timer->data;
    char err[512];
    const char *busy = u->hooks.busy(u->hooks.data);
    if (busy) {
        snprintf(err, sizeof err, "the arbiter changed state during the pre-flight (%s)", busy);
        upgrade_finish(u, err);
        return;
    }
    json_t *state = u->hooks.save(u->hooks.data);
    int fd = state ? state_write_memfd(state, err, sizeof err) : -1;
    if (fd < 0) {
        json_decref(state);
        upgrade_finish(u, state ? err : "out of memory describing the running state");
        return;
    }
    size_t env_count = 0;
    while (environ[env_count])
        env_count++;
    char **env = calloc(env_count + 5, sizeof *env);
    char state_env[64], notify_env[3][300];
    if (!env) {
        close(fd);
        json_decref(state);
        upgrade_finish(u, "out of memory preparing the exec");
        return;
    }
    memcpy(env, environ, env_count * sizeof *env);
    snprintf(state_env, sizeof state_env, "%s=%d", UPGRADE_STATE_FD_ENV, fd);
    env[env_count++] = state_env;
    for (size_t i = 0; i < 3; i++) {
        if (!u->notify_env[i][0])
            continue;
        snprintf(notify_env[i], sizeof notify_env[i], "%s=%s", notify_names[i], u->notify_env[i]);
        env[env_count++] = notify_env[i];
    }
    state_set_inheritable(state, true, false);
    /* A fresh watchdog ping: the new image's own first ping comes once it has started. */
    notify_send(u->notify, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=upgrading in place%s",
                (unsigned long long)notify_monotonic_usec(), u->notify->watchdog_usec ? "\nWATCHDOG=1" : "");
    log_info("upgrade_exec", "re-executing %s in place (pid %d stays)", u->exe_path, (int)getpid());
    fflush(NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(u->exe_path, saved_argv, env);
    /* Still here: nothing was replaced. Take the fds back and carry on. */
    int saved_errno = errno;
    state_set_inheritable(state, false, false);
    json_decref(state);
    close(fd);
    free(env);
    snprintf(err, sizeof err, "execve(%.300s) failed: %s", u->exe_path, strerror(saved_errno));
    notify_send(u->notify, "READY=1");
    upgrade_finish(u, err);
}

void upgrade_close(struct upgrade *u) {
    if (preflight_running(u)) {
        kill(u->child.pid, SIGKILL);
        child_forget(&u->child);
    }
    upgrade_finish(u, NULL);
    if (u->timer.loop && !uv_is_closing((uv_handle_t *)&u->timer))
        uv_close((uv_handle_t *)&u->timer, NULL);
}

/* ---- the pre-flight, in the new binary ---- */

int upgrade_preflight_main(int argc, char **argv) {
    char err[CONFIG_ERROR_MAX];
    json_t *state = upgrade_take_state(err, sizeof err);
    if (!state) {
        fprintf(stderr, "%s\n", err[0] ? err : "no upgrade state was handed over (" UPGRADE_STATE_FD_ENV " is unset)");
        return EXIT_RUNTIME_FAILURE;
    }
    const char *parts[] = {"listeners", "pool"};
    for (size_t i = 0; i < 2; i++) {
        if (!json_object_get(state, parts[i])) {
            fprintf(stderr, "the upgrade state has no \"%s\": it comes from an incompatible arbiter\n", parts[i]);
            json_decref(state);
            return EXIT_RUNTIME_FAILURE;
        }
    }
    struct config config;
    argv[0] = "run";
    enum config_result result = config_parse(&config, argc, argv, environ, err, sizeof err);
    config_free(&config);
    if (result != CONFIG_OK) {
        fprintf(stderr, "the new arbiter does not accept the running configuration: %s\n", err);
        json_decref(state);
        return EXIT_USAGE;
    }
    char build[17];
    compute_build("/proc/self/exe", build);
    printf("arbiter %s (build %s) reads upgrade state version %lld and accepts the configuration\n", ARBITER_VERSION,
           build, (long long)json_integer_value(json_object_get(state, "state_version")));
    json_decref(state);
    return EXIT_CLEAN;
}
