/* worker.c - one worker process and its state machine.
 *
 * A worker is a child process (child.h: the spawn, the channel, its output, the reaper entry) and
 * one libuv handle of its own, a deadline timer. The deadline is the only timer a worker needs, because a
 * worker waits for one thing at a time: booting waits for `ready` (--boot-timeout), ready waits for
 * the next heartbeat (--timeout), draining waits for the exit (--graceful-timeout). Re-arming a timer
 * costs no wakeup, so an idle pool wakes the arbiter only when a heartbeat arrives.
 *
 * All state changes go through worker_transition(), which checks the transition table and performs
 * the entry action of the new state. The worker is freed only after all its handles are closed,
 * through worker_close() — the one path — after the process has been reaped. */
#include "worker.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "board.h"
#include "handshake.h"
#include "leftovers.h"
#include "listener.h"
#include "log.h"
#include "procstat.h"

#define STACK_DUMP_GRACE_MS 1000u /* time for faulthandler to write the stacks before SIGKILL */
#define QUICK_STOP_MS 1000u
#define WORKER_LOG_EXCERPT 81 /* at most 80 characters of a worker's bytes in one log line */

static const char *const state_names[WORKER_STATE_COUNT] = {
    [WORKER_SPAWNING] = "spawning", [WORKER_BOOTING] = "booting", [WORKER_READY] = "ready",
    [WORKER_DRAINING] = "draining", [WORKER_EXITED] = "exited",
};

/* allowed[from][to]: the whole life of a worker. Any state may end in EXITED (a crash). */
static const bool allowed[WORKER_STATE_COUNT][WORKER_STATE_COUNT] = {
    [WORKER_SPAWNING] = {[WORKER_BOOTING] = true, [WORKER_EXITED] = true},
    [WORKER_BOOTING] = {[WORKER_READY] = true, [WORKER_DRAINING] = true, [WORKER_EXITED] = true},
    [WORKER_READY] = {[WORKER_DRAINING] = true, [WORKER_EXITED] = true},
    [WORKER_DRAINING] = {[WORKER_EXITED] = true},
    [WORKER_EXITED] = {false},
};

const char *worker_state_name(enum worker_state state) {
    return state < WORKER_STATE_COUNT ? state_names[state] : "invalid";
}

bool worker_transition_allowed(enum worker_state from, enum worker_state to) {
    return from < WORKER_STATE_COUNT && to < WORKER_STATE_COUNT && allowed[from][to];
}

static uint64_t seconds_to_ms(double seconds) { return (uint64_t)(seconds * 1000.0 + 0.5); }

static void worker_on_deadline(uv_timer_t *timer);

static void worker_arm_deadline(struct worker *w, uint64_t ms) {
    if (ms == 0)
        uv_timer_stop(&w->deadline);
    else
        uv_timer_start(&w->deadline, worker_on_deadline, ms, 0);
}

bool worker_transition(struct worker *w, enum worker_state next) {
    if (!worker_transition_allowed(w->state, next)) {
        log_event(LOG_ERROR, "worker_illegal_transition", w->slot_id, w->pid,
                  "refusing illegal transition %s -> %s (a bug in arbiter; please report it)",
                  worker_state_name(w->state), worker_state_name(next));
        return false;
    }
    const struct config *config = w->env->config;
    w->state = next;
    switch (next) {
    case WORKER_SPAWNING:
        break;
    case WORKER_BOOTING:
        worker_arm_deadline(w, seconds_to_ms(config->boot_timeout));
        break;
    case WORKER_READY:
        w->ready_ms = uv_now(w->env->loop);
        worker_arm_deadline(w, seconds_to_ms(config->timeout));
        break;
    case WORKER_DRAINING:
        break; /* worker_stop arms the deadline: graceful and quick stops differ */
    case WORKER_EXITED:
        uv_timer_stop(&w->deadline);
        break;
    case WORKER_STATE_COUNT:
        break;
    }
    return true;
}

/* ---- the channel ---- */

/* Refreshes the /proc figures, then checks --max-lifetime and --max-memory. Runs when a heartbeat
 * arrives: no timer of its own, so it costs no wakeups, and a heartbeat interval (at most 5 s) is
 * precise enough for both limits. */
static void worker_refresh_stats(struct worker *w, bool force) {
    uint64_t now = uv_now(w->env->loop);
    if (force || !w->stats_ms || w->env->config->max_memory || now - w->stats_ms >= WORKER_STATS_MAX_AGE_MS) {
        if (procstat_read(w->pid, &w->stats) == 0)
            w->stats_ms = now ? now : 1;
    }
}

static void worker_on_heartbeat(struct worker *w) {
    const struct config *config = w->env->config;
    uint64_t now = uv_now(w->env->loop);
    worker_refresh_stats(w, false);
    if (w->state != WORKER_READY || w->retire_requested)
        return;
    char reason[96] = "";
    uint64_t lived_ms = now - w->started_ms;
    if (config->max_lifetime > 0 && (double)lived_ms >= config->max_lifetime * 1000.0)
        snprintf(reason, sizeof reason, "max-lifetime: up %.0f s", (double)lived_ms / 1000);
    else if (config->max_memory && w->stats.pss_bytes > config->max_memory)
        snprintf(reason, sizeof reason, "max-memory: PSS %.1f MiB > %.1f MiB", (double)w->stats.pss_bytes / 1048576,
                 (double)config->max_memory / 1048576);
    if (reason[0]) {
        w->retire_requested = true;
        w->env->events.retire(w, reason, w->env->events.data);
    }
}

/* The first line must be a hello of our protocol. A shim from another install is killed at once (we
 * cannot know what else it would misunderstand) and counts like the shim's exit 4 (pool.c). */
static void worker_on_first_message(struct worker *w, const json_t *message) {
    if (w->kill_reason == KILL_PROTOCOL_MISMATCH)
        return; /* already refused: whatever else it sends is ignored */
    char problem[768];
    if (handshake_accept(message, problem, sizeof problem)) {
        w->greeted = true;
        return;
    }
    log_event(LOG_ERROR, "worker_protocol_mismatch", w->slot_id, w->pid, "refusing this worker: %s", problem);
    w->kill_reason = KILL_PROTOCOL_MISMATCH;
    worker_arm_deadline(w, 0);
    if (w->pid > 0) /* a worker built by a test or a fuzzer has none, and kill(0) would hit our group */
        worker_send_signal(w, SIGKILL);
}

void worker_handle_message(struct worker *w, const char *line, size_t length) {
    json_error_t error;
    json_t *message = json_loadb(line, length, 0, &error);
    if (!w->greeted) {
        worker_on_first_message(w, message);
        json_decref(message);
        return;
    }
    const char *type = message ? json_string_value(json_object_get(message, "type")) : NULL;
    if (!type) {
        char excerpt[WORKER_LOG_EXCERPT]; /* raw bytes from the worker, without a NUL: escaped, bounded */
        log_event(LOG_WARNING, "worker_bad_message", w->slot_id, w->pid,
                  "ignoring a channel line of %zu bytes that is not a JSON object with a \"type\": %s", length,
                  log_escape_excerpt(excerpt, sizeof excerpt, line, length));
        json_decref(message);
        return;
    }
    if (w->state == WORKER_READY && w->kill_reason == KILL_NONE && !w->stack_dump_requested)
        worker_arm_deadline(w, seconds_to_ms(w->env->config->timeout)); /* any message is a sign of life */
    if (strcmp(type, "heartbeat") == 0) {
        json_int_t requests = json_integer_value(json_object_get(message, "requests"));
        json_int_t in_flight = json_integer_value(json_object_get(message, "in_flight"));
        w->requests = requests > 0 ? (uint64_t)requests : 0;
        w->in_flight = in_flight > 0 ? (uint64_t)in_flight : 0;
        worker_on_heartbeat(w);
    } else if (strcmp(type, "ready") == 0) {
        if (w->state == WORKER_BOOTING && w->kill_reason != KILL_NONE) {
            /* Too late: the boot timeout fired and the kill is under way (stack dump, then SIGKILL).
             * Accepting it would let the kill land later, under traffic, still called a boot timeout. */
            log_event(LOG_WARNING, "worker_ready_too_late", w->slot_id, w->pid,
                      "ready arrived after --boot-timeout fired; ignoring it, the worker is killed as a boot timeout");
        } else if (w->state == WORKER_BOOTING && worker_transition(w, WORKER_READY)) {
            worker_refresh_stats(w, true); /* the app is imported now: memory worth showing */
            w->env->events.ready(w, w->env->events.data);
        }
    } else if (strcmp(type, "retire") == 0) {
        json_t *reason = json_object_get(message, "reason");
        if (!w->retire_requested && w->state == WORKER_READY) {
            w->retire_requested = true;
            char shown[WORKER_LOG_EXCERPT]; /* the reason is logged: escaped like any bytes from a worker */
            const char *text = json_string_value(reason);
            w->env->events.retire(w, text ? log_escape_excerpt(shown, sizeof shown, text, json_string_length(reason))
                                          : "requested", w->env->events.data);
        }
    } else {
        char shown[WORKER_LOG_EXCERPT];
        log_event(LOG_DEBUG, "worker_unknown_message", w->slot_id, w->pid, "ignoring message type '%s'",
                  log_escape_excerpt(shown, sizeof shown, type, strlen(type)));
    }
    json_decref(message);
}

/* ---- deadlines ---- */

/* A worker leads its own process group (setsid at spawn, or in the forked child), so a hard kill
 * takes whatever the app started along with it. Before setsid has run there is no such group yet:
 * then the pid alone. */
void worker_send_signal(struct worker *w, int signum) {
    if (w->state == WORKER_EXITED || w->pid <= 0)
        return;
    if (signum == SIGKILL && kill(-w->pid, SIGKILL) == 0)
        return;
    if (kill(w->pid, signum) != 0 && errno != ESRCH)
        log_event(LOG_ERROR, "worker_kill_failed", w->slot_id, w->pid, "cannot send signal %d: %s", signum,
                  strerror(errno));
}

/* Reads, without waiting, what the worker already sent: when the arbiter itself ran late, its
 * heartbeats may be waiting in the channel while the deadline fires. Bounded: one buffer's worth of
 * reads, enough for every heartbeat of a long stall. Called from the deadline itself; returns true
 * when what was read armed it again (a sign of life). */
static bool worker_read_waiting(struct worker *w) {
    if (w->state == WORKER_EXITED)
        return false;
    child_read_waiting(&w->child, 64);
    if (w->state == WORKER_EXITED)
        return true;
    return uv_is_active((uv_handle_t *)&w->deadline); /* it fired, so only a message armed it again */
}

void worker_on_loop_stall(struct worker *w, uint64_t stalled_ms) {
    if (w->state == WORKER_EXITED || w->stack_dump_requested || w->kill_reason != KILL_NONE ||
        !uv_is_active((uv_handle_t *)&w->deadline))
        return; /* a kill already under way goes on */
    if (w->state == WORKER_READY)
        worker_arm_deadline(w, seconds_to_ms(w->env->config->timeout)); /* a whole --timeout from now: its heartbeats are unread, not missing */
    else /* booting or draining: the time the arbiter lost is given back */
        worker_arm_deadline(w, uv_timer_get_due_in(&w->deadline) + stalled_ms);
}

static void worker_on_deadline(uv_timer_t *timer) {
    struct worker *w = timer->data;
    const struct config *config = w->env->config;
    if (!w->stack_dump_requested && (w->state == WORKER_READY || w->state == WORKER_BOOTING) && worker_read_waiting(w))
        return; /* its heartbeat (or ready) was waiting for us: it is alive */
    if (w->state == WORKER_SPAWNING) {
        char reason[128];
        snprintf(reason, sizeof reason, "its process was not created within %.1f s (--boot-timeout)", config->boot_timeout);
        worker_spawn_failed(w, reason);
        return;
    }
    if (w->stack_dump_requested || w->state == WORKER_DRAINING) {
        if (w->state == WORKER_DRAINING && w->kill_reason == KILL_NONE) {
            w->kill_reason = KILL_GRACEFUL_TIMEOUT;
            log_event(LOG_WARNING, "worker_graceful_timeout", w->slot_id, w->pid,
                      "still running %.1f s after it was told to stop (--graceful-timeout %.1f s + %.1f s to exit); killing it "
                      "(raise --graceful-timeout if requests need longer)",
                      (double)worker_graceful_kill_ms(config->graceful_timeout) / 1000, config->graceful_timeout,
                      WORKER_KILL_MARGIN_MS / 1000.0);
        }
        worker_send_signal(w, SIGKILL);
        return;
    }
    if (w->state == WORKER_BOOTING) {
        w->kill_reason = KILL_BOOT_TIMEOUT;
        log_event(LOG_ERROR, "worker_boot_timeout", w->slot_id, w->pid,
                  "not ready %.1f s after it started (--boot-timeout); dumping its Python stacks, then killing it",
                  config->boot_timeout);
    } else {
        w->kill_reason = KILL_HEARTBEAT_TIMEOUT;
        log_event(LOG_ERROR, "worker_timeout", w->slot_id, w->pid,
                  "no heartbeat for %.1f s (--timeout): its event loop is blocked; dumping its Python stacks, then killing it",
                  config->timeout);
    }
    w->stack_dump_requested = true;
    worker_send_signal(w, SIGUSR1); /* faulthandler in the shim writes every thread's stack to stderr */
    worker_arm_deadline(w, STACK_DUMP_GRACE_MS);
}

/* ---- process ---- */

/* Every way a worker ends arrives here exactly once: the reaper (child.h), or a spawn that failed. */
static void worker_exited(struct worker *w, int64_t exit_status, int term_signal) {
    child_output_drain(&w->child.output); /* its traceback before our line about its exit */
    w->exit_status = exit_status;
    w->term_signal = term_signal;
    /* What the app started in the worker's group goes with it: at once when it was killed hard. */
    if (w->pid > 0 && w->env->leftovers)
        leftovers_group_exited(w->env->leftovers, w->pid, w->slot_id, term_signal == SIGKILL);
    else if (term_signal == SIGKILL && w->pid > 0)
        kill(-w->pid, SIGKILL);
    worker_transition(w, WORKER_EXITED);
    w->env->events.exited(w, w->env->events.data); /* the pool detaches it and decides what comes next */
    worker_close(w);
}

static struct worker *worker_of(struct child *child) { return child->data; }

static void worker_on_child_line(struct child *child, const char *line, size_t length) {
    worker_handle_message(worker_of(child), line, length);
}

static void worker_on_child_exit(struct child *child, int64_t exit_status, int term_signal) {
    worker_exited(worker_of(child), exit_status, term_signal);
}

static void worker_on_child_closed(struct child *child) { free(worker_of(child)); }

static const struct child_ops worker_child_ops = {
    .kind = "worker",
    .line = worker_on_child_line,
    .exited = worker_on_child_exit,
    .closed = worker_on_child_closed,
};

void worker_close(struct worker *w) {
    if (!w->child.ops) {
        free(w); /* never opened any: a spawn that failed before it began */
        return;
    }
    child_close_handle(&w->child, (uv_handle_t *)&w->deadline);
    child_close(&w->child); /* frees w once every handle is closed */
}

/* The child and the deadline, before the channel is opened one way or another. */
static void worker_prepare(struct worker *w) {
    uv_loop_t *loop = w->env->loop;
    w->state = WORKER_SPAWNING;
    child_init(&w->child, &worker_child_ops, w, loop, w->env->reaper, w->slot_id);
    w->deadline.data = w;
    uv_timer_init(loop, &w->deadline);
    child_hold_handle(&w->child);
}

/* The channel is open (rc 0): --boot-timeout covers the wait for the process. */
static int worker_opened(struct worker *w, int rc) {
    if (rc != 0)
        return -1;
    worker_arm_deadline(w, seconds_to_ms(w->env->config->boot_timeout));
    return 0;
}

int worker_open(struct worker *w, int channel_fd, char *err, size_t err_size) {
    worker_prepare(w);
    return worker_opened(w, child_open(&w->child, channel_fd, true, err, err_size));
}

int worker_open_pair(struct worker *w, int *peer_fd, char *err, size_t err_size) {
    worker_prepare(w);
    return worker_opened(w, child_open_pair(&w->child, true, peer_fd, err, err_size));
}

void worker_started(struct worker *w, int pid) {
    w->pid = pid;
    w->started_ms = uv_now(w->env->loop);
    worker_transition(w, WORKER_BOOTING);
    if (!child_started(&w->child, pid) && w->stop_requested)
        worker_stop(w, true); /* stopped while its fork was under way */
}

void worker_spawn_failed(struct worker *w, const char *reason) {
    w->kill_reason = KILL_SPAWN_FAILED;
    snprintf(w->spawn_error, sizeof w->spawn_error, "%s", reason);
    worker_transition(w, WORKER_EXITED);
    w->env->events.exited(w, w->env->events.data);
    worker_close(w);
}

int worker_exec(struct worker *w, const struct worker_launch *launch, char *err, size_t err_size) {
    int peer_fd;
    if (worker_open_pair(w, &peer_fd, err, err_size) != 0)
        return -1;
    int fds[LISTENER_MAX + 1];
    size_t count = 0;
    for (size_t i = 0; i < launch->listen_fd_count && i < LISTENER_MAX; i++)
        fds[count++] = launch->listen_fds[i];
    size_t channel_at = count; /* the channel after the listeners, then the board */
    if (launch->board_index)
        fds[count++] = launch->board_fd;
    struct child_spec spec = {.argv = launch->argv, .env = launch->env, .cwd = launch->cwd, .output = true,
                              .fds = fds, .fd_count = count, .channel_at = channel_at};
    int pid = child_spawn(&w->child, &spec, peer_fd, err, err_size);
    if (pid < 0)
        return -1;
    worker_started(w, pid);
    return 0;
}

/* Before a graceful stop's SIGTERM: tell the shim whether the service stays (a reload, a recycle, a
 * scale-down: its WebSockets close with 1012, service restart) or the arbiter stops (1001, going
 * away). Best effort: a channel the worker has not read for long (EAGAIN) keeps the default, 1001. */
static void worker_say_why_it_drains(struct worker *w) {
    static const char restart[] = "{\"type\":\"drain\",\"reason\":\"restart\"}\n";
    static const char stop[] = "{\"type\":\"drain\",\"reason\":\"stop\"}\n";
    int fd = w->child.channel_fd;
    if (fd < 0 || w->child.closing)
        return;
    bool stopping = w->env->stopping && *w->env->stopping;
    const char *line = stopping ? stop : restart;
    size_t length = stopping ? sizeof stop - 1 : sizeof restart - 1;
    ssize_t sent;
    do
        sent = send(fd, line, length, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (sent < 0 && errno == EINTR);
    if (sent != (ssize_t)length)
        log_event(LOG_DEBUG, "drain_reason_unsent", w->slot_id, w->pid, "cannot say why it drains (%s); its WebSockets "
                  "close with 1001", sent < 0 ? strerror(errno) : "short write");
}

void worker_stop(struct worker *w, bool graceful) {
    w->stop_requested = true;
    if (w->state == WORKER_EXITED)
        return;
    if (w->state == WORKER_SPAWNING)
        return; /* worker_started stops it as soon as it exists */
    if (w->state == WORKER_DRAINING) {
        if (!graceful) { /* a quick stop overrides a graceful one already under way */
            worker_send_signal(w, SIGQUIT);
            worker_arm_deadline(w, QUICK_STOP_MS);
        }
        return;
    }
    worker_transition(w, WORKER_DRAINING);
    w->stack_dump_requested = false;
    if (graceful)
        worker_say_why_it_drains(w);
    worker_send_signal(w, graceful ? SIGTERM : SIGQUIT);
    worker_arm_deadline(w, graceful ? worker_graceful_kill_ms(w->env->config->graceful_timeout) : QUICK_STOP_MS);
}

/* The shim counts its stop budget (--graceful-timeout) from the moment its SIGTERM handler ran and
 * ends its drain and lifespan shutdown within it; the arbiter's countdown starts a little earlier,
 * when it sent the signal, and the shim still has to leave its event loop and exit after its
 * budget. So the kill comes WORKER_KILL_MARGIN_MS after the budget, never in the middle of a
 * shutdown the shim was promised (the rule is in docs/worker-channel.md, "Stop deadlines"). */
uint64_t worker_graceful_kill_ms(double graceful_timeout) {
    return seconds_to_ms(graceful_timeout) + WORKER_KILL_MARGIN_MS;
}

void worker_describe_exit(const struct worker *w, char *out, size_t size) {
    static const char *const because[] = {
        [KILL_NONE] = "",
        [KILL_HEARTBEAT_TIMEOUT] = " after missing heartbeats (--timeout)",
        [KILL_BOOT_TIMEOUT] = " after not booting in time (--boot-timeout)",
        [KILL_GRACEFUL_TIMEOUT] = " after --graceful-timeout",
        [KILL_SPAWN_FAILED] = "",
        [KILL_PROTOCOL_MISMATCH] = " after its shim spoke another channel protocol",
    };
    if (w->kill_reason == KILL_SPAWN_FAILED)
        snprintf(out, size, "could not start: %s", w->spawn_error);
    else if (w->term_signal)
        snprintf(out, size, "killed by signal %d (%s)%s", w->term_signal, strsignal(w->term_signal), because[w->kill_reason]);
    else
        snprintf(out, size, "exit code %lld%s", (long long)w->exit_status, because[w->kill_reason]);
}

/* ---- in-place upgrade: a worker handed from one arbiter image to the next ---- */

static enum worker_state worker_state_from_name(const char *name) {
    for (int s = 0; s < WORKER_STATE_COUNT; s++)
        if (name && strcmp(name, state_names[s]) == 0)
            return (enum worker_state)s;
    return WORKER_STATE_COUNT;
}

json_t *worker_save(const struct worker *w) {
    int fd = w->child.channel_fd;
    json_t *saved = json_pack("{s:b, s:i, s:i, s:i, s:s, s:i, s:I, s:I, s:I, s:I, s:b, s:b, s:b, s:i, s:I}", "greeted",
                              w->greeted, "slot",
                              (int)w->slot_id, "pid", w->pid, "channel_fd", fd, "state", worker_state_name(w->state),
                              "generation", (int)w->generation, "started_ms", (json_int_t)w->started_ms, "ready_ms",
                              (json_int_t)w->ready_ms, "requests", (json_int_t)w->requests, "in_flight",
                              (json_int_t)w->in_flight, "stop_requested", w->stop_requested, "retire_requested",
                              w->retire_requested, "stack_dump_requested", w->stack_dump_requested, "kill_reason",
                              (int)w->kill_reason, "deadline_ms",
                              uv_is_active((const uv_handle_t *)&w->deadline) ? (json_int_t)uv_timer_get_due_in(&w->deadline)
                                                                              : (json_int_t)-1);
    if (saved && w->board_index)
        json_object_set_new(saved, "board_index", json_integer(w->board_index));
    int output_fd = child_output_fd(&w->child.output);
    if (saved && output_fd >= 0) /* the next image reads the worker's stdout and stderr on */
        json_object_set_new(saved, "output_fd", json_integer(output_fd));
    /* A partial line already read from the channel: the rest is still in the socket. */
    json_t *pending = w->child.lines.length && !w->child.lines.discarding ? json_stringn(w->child.lines.data, w->child.lines.length) : NULL;
    if (saved && pending)
        json_object_set_new(saved, "pending", pending);
    return saved;
}

struct worker *worker_restore(const struct worker_env *env, json_t *saved, char *err, size_t err_size) {
    json_int_t slot_id = 0, pid = 0, fd = -1, generation = 0, started = 0, ready = 0, requests = 0, in_flight = 0,
               kill_reason = 0, deadline = 0;
    int stop = 0, retire = 0, dump = 0;
    const char *state_name = NULL;
    json_error_t error;
    if (json_unpack_ex(saved, &error, 0, "{s:I, s:I, s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:b, s:b, s:b, s:I, s:I}",
                       "slot", &slot_id, "pid", &pid, "channel_fd", &fd, "state", &state_name, "generation", &generation,
                       "started_ms", &started, "ready_ms", &ready, "requests", &requests, "in_flight", &in_flight,
                       "stop_requested", &stop, "retire_requested", &retire, "stack_dump_requested", &dump,
                       "kill_reason", &kill_reason, "deadline_ms", &deadline) != 0) {
        snprintf(err, err_size, "a worker in the upgrade state is malformed: %s", error.text);
        return NULL;
    }
    enum worker_state state = worker_state_from_name(state_name);
    if (state == WORKER_STATE_COUNT || state == WORKER_EXITED || state == WORKER_SPAWNING || pid <= 0 || fd < 0 ||
        kill_reason < KILL_NONE || kill_reason > KILL_PROTOCOL_MISMATCH) {
        snprintf(err, err_size, "worker pid %lld in the upgrade state cannot be adopted (state %s)", (long long)pid,
                 state_name);
        return NULL;
    }
    struct worker *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, err_size, "out of memory adopting worker pid %lld", (long long)pid);
        return NULL;
    }
    w->env = env;
    w->slot_id = (unsigned)slot_id;
    w->generation = (unsigned)generation;
    worker_prepare(w);
    json_t *output_fd = json_object_get(saved, "output_fd");
    if (child_adopt(&w->child, (int)pid, (int)fd, output_fd ? (int)json_integer_value(output_fd) : -1, err, err_size) != 0) {
        worker_close(w);
        return NULL;
    }
    /* Restoring, not transitioning: the worker is already in this state, with its deadline running. */
    w->state = state;
    w->pid = (int)pid;
    w->started_ms = (uint64_t)started; /* uv_now is CLOCK_MONOTONIC: the same clock in both images */
    w->ready_ms = (uint64_t)ready;
    w->requests = (uint64_t)requests;
    w->in_flight = (uint64_t)in_flight;
    w->stop_requested = stop;
    w->retire_requested = retire;
    w->stack_dump_requested = dump;
    w->kill_reason = (enum worker_kill_reason)kill_reason;
    w->greeted = json_is_true(json_object_get(saved, "greeted"));
    json_int_t board_index = json_integer_value(json_object_get(saved, "board_index"));
    if (board_index > 0 && env->board && board_get(env->board, (unsigned)board_index)) {
        w->board_index = (unsigned)board_index; /* the board came along: the worker keeps its entry */
        board_mark_used(env->board, w->board_index);
    }
    const char *pending = json_string_value(json_object_get(saved, "pending"));
    size_t pending_length = json_string_length(json_object_get(saved, "pending"));
    if (pending && pending_length < sizeof w->child.line_storage) {
        memcpy(w->child.line_storage, pending, pending_length);
        w->child.lines.length = pending_length;
    }
    worker_arm_deadline(w, deadline < 0 ? 0 : deadline == 0 ? 1 : (uint64_t)deadline);
    worker_refresh_stats(w, true);
    return w;
}
