/* upgrade.h - replacing the arbiter's binary in place: same pid, same sockets, same workers. */
#ifndef ARBITER_UPGRADE_H
#define ARBITER_UPGRADE_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "child.h"
#include "reaper.h"

/* The format of the state document one image hands to the next. A binary reads versions up to
 * UPGRADE_STATE_VERSION; the pre-flight refuses an upgrade to one that cannot read ours. */
#define UPGRADE_STATE_VERSION 1
#define UPGRADE_STATE_FD_ENV "ARBITER_UPGRADE_STATE_FD"
#define UPGRADE_PREFLIGHT_MS 15000u
#define UPGRADE_OUTPUT_MAX 1024

struct notify;

/* What the upgrade needs from the daemon, handed over at init: it calls nothing above it. */
struct upgrade_hooks {
    const char *(*busy)(void *data); /* why an upgrade cannot start (or exec) now; NULL: it can */
    json_t *(*save)(void *data);     /* the state document the next image adopts; NULL: out of memory */
    void (*changed)(void *data);     /* an attempt moved on or ended: waiting `ctl upgrade`s re-check */
    void *data;
};

enum upgrade_phase { UPGRADE_IDLE, UPGRADE_PREFLIGHT, UPGRADE_EXEC_PENDING };

struct upgrade {
    uv_loop_t *loop;
    struct reaper *reaper;
    struct notify *notify;
    struct upgrade_hooks hooks;
    enum upgrade_phase phase;
    uint64_t attempts;     /* upgrades asked for (ctl upgrade, SIGUSR2); `ctl upgrade` waits for its own */
    uint64_t failed;       /* attempts that ended in a refusal */
    char failure[640];     /* why the last one was refused */

    /* The pre-flight: the binary now installed at our path, asked whether it can take over. */
    struct child child; /* its process (child.h): spawned, reaped; no channel, its output read below */
    uv_pipe_t output;
    uv_timer_t timer; /* the pre-flight's deadline, then the short wait before the exec */
    bool output_open, output_done;
    int64_t exit_status;
    int term_signal;
    int state_fd; /* the state document given to the pre-flight */
    char output_text[UPGRADE_OUTPUT_MAX];
    size_t output_length;

    /* This image: what status and /metrics show. */
    char exe_path[PATH_MAX];
    char build[17];            /* FNV-1a of the binary: tells two builds of one version apart */
    unsigned upgrades;         /* in-place upgrades this process went through */
    char previous_version[32];
    char previous_build[17];
    double upgraded_at;        /* unix time of the last upgrade; 0: never */
    char notify_env[3][256];   /* NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID, which notify_init removes */
};

/* Remembers the command line to re-execute (from main). */
void upgrade_set_argv(int argc, char **argv);

/* Before notify_init: the binary's path and build, and the systemd variables the next image needs. */
void upgrade_init(struct upgrade *upgrade, uv_loop_t *loop, struct reaper *reaper, struct notify *notify,
                  struct upgrade_hooks hooks);

/* Starts an upgrade (ctl upgrade, SIGUSR2): pre-flight, then the re-exec. Returns -1 with err when it
 * cannot even start (stopping, a reload running, one already under way). */
int upgrade_request(struct upgrade *upgrade, const char *why, char *err, size_t err_size);

bool upgrade_in_progress(const struct upgrade *upgrade);

/* The next image: the state document handed over, or NULL (no upgrade; or err set when it was
 * handed over and is unreadable). */
json_t *upgrade_take_state(char *err, size_t err_size);

/* Whether this binary reads a state document of that version (pure). */
int upgrade_check_state_version(json_int_t version, char *err, size_t err_size);

/* `arbiter upgrade-check RUN-ARGS...`: the pre-flight, run by the old image with the state on
 * ARBITER_UPGRADE_STATE_FD. Exit 0 when this binary can take over. */
int upgrade_preflight_main(int argc, char **argv);

void upgrade_close(struct upgrade *upgrade);

#endif
