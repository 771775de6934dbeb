/* worker.h - one worker process: spawn, channel, state machine, stop. */
#ifndef ARBITER_WORKER_H
#define ARBITER_WORKER_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#include "child.h"
#include "config.h"
#include "procstat.h"

#define WORKER_LINE_MAX CHILD_LINE_MAX
/* PSS costs ~1 ms per worker to read (smaps_rollup walks every mapping): read it on a worker's own
 * heartbeat, at most this often, so a scrape or a status never reads /proc for 64 workers at once. */
#define WORKER_STATS_MAX_AGE_MS 10000u

/* The life of one worker process. Slot-level states (backoff, crashloop) live in pool.h. */
enum worker_state {
    WORKER_SPAWNING, /* asked for: exec in progress, or a fork requested from the zygote */
    WORKER_BOOTING,  /* running, lifespan startup not finished: --boot-timeout applies */
    WORKER_READY,    /* serving: --timeout between heartbeats applies */
    WORKER_DRAINING, /* told to stop: --graceful-timeout applies, then SIGKILL */
    WORKER_EXITED,   /* reaped; handles closing */
    WORKER_STATE_COUNT
};

/* Why the arbiter killed a worker, so its exit is explained in logs and status. */
enum worker_kill_reason {
    KILL_NONE,
    KILL_HEARTBEAT_TIMEOUT,
    KILL_BOOT_TIMEOUT,
    KILL_GRACEFUL_TIMEOUT,
    KILL_SPAWN_FAILED, /* never ran: exec failed, or the zygote could not fork it */
    KILL_PROTOCOL_MISMATCH, /* its first message was not a hello of our protocol (handshake.h) */
};

struct board;
struct leftovers;
struct slot;
struct worker;

/* How a worker tells its owner (the pool) what happened: it calls nothing above it. */
struct worker_events {
    void (*ready)(struct worker *worker, void *data);  /* booting -> ready */
    void (*exited)(struct worker *worker, void *data); /* exited (reaped, or never ran); worker_close follows */
    void (*retire)(struct worker *worker, const char *reason, void *data); /* asks for a replacement */
    void *data;
};

/* What every worker of a pool shares; the pool owns it and outlives its workers. */
struct worker_env {
    uv_loop_t *loop;
    const struct config *config; /* the timeouts and limits */
    struct reaper *reaper;       /* delivers the exits; NULL in unit tests without processes */
    struct leftovers *leftovers; /* ends what an exited worker left in its group; NULL: none */
    struct board *board;         /* the workers' entries; NULL: workers run without one */
    const bool *stopping;        /* the arbiter stops: a drain tells the shim so (1001); NULL: never */
    struct worker_events events;
};

struct worker {
    const struct worker_env *env;
    struct slot *slot;     /* the pool's, never read here; NULL once it left its slot to drain (after a replacement or a scale-down) */
    unsigned slot_id;
    unsigned generation;
    enum worker_state state;
    enum worker_kill_reason kill_reason;
    bool stack_dump_requested;
    bool stop_requested;   /* planned: not a crash */
    bool retire_requested; /* the worker asked for a replacement (max-requests) */
    bool greeted;          /* its hello was accepted: the rest of the channel may be read */
    int pid;
    uint64_t started_ms;
    uint64_t ready_ms;     /* loop time when it became ready; 0 before */
    uint64_t requests;
    uint64_t in_flight;
    unsigned board_index;    /* its entry on the board (board.h); 0: none */
    struct proc_stats stats; /* from /proc, refreshed on heartbeats (WORKER_STATS_MAX_AGE_MS) */
    uint64_t stats_ms;       /* loop time of the last refresh; 0: never read */
    int64_t exit_status;
    int term_signal;
    char spawn_error[400];   /* KILL_SPAWN_FAILED: why it never ran (a zygote refusal says what and why) */
    struct worker *next;   /* in the pool's list of draining workers */

    struct child child;   /* the process: spawn, channel, output, reaper entry (child.h) */
    uv_timer_t deadline;
};

/* Everything a worker process needs to start. */
struct worker_launch {
    char **argv;  /* PYTHON -m arbiter_worker ... APP */
    char **env;
    const char *cwd;
    const int *listen_fds;
    size_t listen_fd_count;
    unsigned max_requests; /* this worker's --max-requests, jitter included (0: none) */
    int board_fd;          /* the board's memfd, passed after the channel when board_index is set */
    unsigned board_index;
};

const char *worker_state_name(enum worker_state state);

/* The one place a worker changes state; entry actions (deadlines) happen here. An illegal
 * transition is logged and refused (returns false). */
bool worker_transition(struct worker *worker, enum worker_state next);

/* Pure table lookup, for tests and for the transition function. */
bool worker_transition_allowed(enum worker_state from, enum worker_state to);

/* Starts the life of a worker whose process is being created: our end of its channel is watched, the
 * pipe for its stdout and stderr is made (the spawner hands its write end to the process, then calls
 * child_output_close_write_end) and the state is SPAWNING (--boot-timeout covers the wait). On
 * failure nothing stays open, the fd is closed, and err says why; the caller closes the worker
 * (worker_close). Spawners (spawner.h) call this, then worker_started() once the process exists,
 * or worker_spawn_failed(). worker_open watches channel_fd; worker_open_pair makes the socketpair
 * and hands back the worker's end in *peer_fd (close-on-exec) for the spawner to pass and close. */
int worker_open(struct worker *worker, int channel_fd, char *err, size_t err_size);
int worker_open_pair(struct worker *worker, int *peer_fd, char *err, size_t err_size);

/* The exec spawner's work: worker_open_pair, child_spawn of launch->argv, worker_started(). */
int worker_exec(struct worker *worker, const struct worker_launch *launch, char *err, size_t err_size);

/* The process exists: the reaper watches it and the boot deadline starts. */
void worker_started(struct worker *worker, int pid);

/* The process will never exist: the worker exits at once, explained by reason. */
void worker_spawn_failed(struct worker *worker, const char *reason);

/* Sends a signal to a running worker; a worker already gone is not an error. */
void worker_send_signal(struct worker *worker, int signum);

/* Graceful: SIGTERM, SIGKILL after worker_graceful_kill_ms(). Quick: SIGQUIT, SIGKILL after 1 s. */
void worker_stop(struct worker *worker, bool graceful);

/* How long after SIGTERM the arbiter SIGKILLs: --graceful-timeout (the shim's own budget, counted
 * from its signal handler) plus WORKER_KILL_MARGIN_MS for the signal's delivery and the exit. */
#define WORKER_KILL_MARGIN_MS 2000u
uint64_t worker_graceful_kill_ms(double graceful_timeout);

/* Closes the handles once the process has exited (or never existed); frees the worker when the last
 * one is closed. */
void worker_close(struct worker *worker);

/* Explains the exit in words: "exit code 3", "killed by signal 9 after missing heartbeats". */
void worker_describe_exit(const struct worker *worker, char *out, size_t size);

/* In-place upgrade: everything the next image needs to adopt the running worker (its channel fd
 * included, which the caller makes inheritable), and the adoption itself. */
json_t *worker_save(const struct worker *worker);
struct worker *worker_restore(const struct worker_env *env, json_t *saved, char *err, size_t err_size);

/* The arbiter's own loop ran stalled_ms late (stall.h): a ready worker's heartbeat deadline starts
 * again, a booting or draining one's is pushed back by the stall; a kill under way goes on. */
void worker_on_loop_stall(struct worker *worker, uint64_t stalled_ms);

/* Handles one complete line from the channel (exposed for the fuzzer and unit tests). */
void worker_handle_message(struct worker *worker, const char *line, size_t length);

#endif
