/* control_commands.h - the control protocol: requests, replies, errors, and the table of commands.
 *
 * The server that carries it (socket, clients, permissions) is control.h.
 *
 * PROTOCOL (the one place it is documented)
 *
 * A UNIX stream socket. Each request is one JSON object on one line, each reply one JSON object on
 * one line; a connection may carry several requests, one after the other. Lines are at most
 * CONTROL_LINE_MAX bytes. A client that completes no request within CONTROL_FIRST_REQUEST_MS of
 * connecting, or within CONTROL_IDLE_MS of its previous reply, is disconnected (partial input does not
 * count). At most CONTROL_MAX_CLIENTS are connected at once: beyond that the connection idle the
 * longest (no command of its own under way) is closed with busy to make room, so idle or hung clients
 * can never crowd out `ctl status` or `ctl health`; only when every client waits for a command of
 * its own does a new one get busy.
 *
 *   request  {"cmd": NAME, ...fields}
 *   success  {"ok": true, ...result}
 *   failure  {"ok": false, "error": {"code": CODE, "message": TEXT}}
 *
 * Commands                                                       permission
 *   {"cmd":"status"}                                              read
 *       → {"ok":true,"pid","name","version","app","state":"running|reloading|stopping|starting",
 *          "target_workers","ready_workers","generation","uptime_s","reloads","listeners":[..],
 *          "workers":[{"id","pid","state":"booting|ready|draining|backoff|crashloop","generation",
 *                      "uptime_s","requests","in_flight","restarts","last_exit",
 *                      "memory_rss_bytes","memory_pss_bytes","memory_shared_bytes",
 *                      "memory_private_bytes","cpu_seconds"}],
 *          "spawner":"exec|fork", "zygote":null|{"pid","generation","state","import_seconds",
 *          "memory_pss_bytes","memory_rss_bytes","forks","restarts"},
 *          "reload":{"state":"idle|running|done|failed","generation","failure"?},
 *          "build","upgrades","upgraded_at":null|unix time,"previous_version","previous_build",
 *          "orphans_reaped"}
 *   {"cmd":"scale","workers":N}            absolute                write
 *   {"cmd":"scale","delta":±N}             relative
 *       → {"ok":true,"target_workers":N,"ready_workers":N} once all N are ready and removed
 *         workers have exited (or at once with "wait":false)
 *   {"cmd":"reload"}                                              write
 *       → {"ok":true,"generation":G} once every worker was replaced (or at once with "wait":false)
 *   {"cmd":"recycle","id":ID}              replace one worker     write
 *       → {"ok":true,"id":ID,"pid":NEW_PID} once the replacement is ready
 *   {"cmd":"stop","quick":false}           graceful (default) or quick            write
 *       → {"ok":true,"pid":P} at once; the arbiter then stops
 *   {"cmd":"autoscale","min":MIN,"max":MAX}   autoscale between MIN and MAX   write
 *   {"cmd":"autoscale","enabled":false}       autoscaling off, the count stays
 *       → {"ok":true,"autoscale":{...as in status}} at once; a count outside MIN:MAX starts moving
 *   status also has "autoscale":{"enabled","min","max","low_for_s" (how long load has been low),"signals":{"queue","busy","lag_s",
 *       "memory_pss_bytes"},"decisions":{"up","down","blocked"},"last_decision":null|{"action":
 *       "up|down|blocked","reason","from","to","seconds_ago","queue","busy","lag_s"}}, "balance":
 *       "even|kernel", and per worker "connections" (from the board; 0 when unknown)
 *   {"cmd":"upgrade"}                      re-exec the installed binary in place  write
 *       → {"ok":true,"pid":P,"upgrades":N,"version","build"} once the pre-flight passed, just before
 *         the re-exec (the connection then closes; status shows "upgrades":N+1 when it is back);
 *         "failed" with the pre-flight's words when the new binary cannot take over
 *   {"cmd":"health"}                       readiness, the same rule as /healthz   read
 *   {"cmd":"health","all":true}            ... and every target worker ready
 *   {"cmd":"health","live":true}           liveness: the event loop answers
 *       → {"ok":true,"state","reason","ready_workers","target_workers","min_ready"} when healthy;
 *         {"ok":false,"error":{"code":"unhealthy","message":REASON}} while stopping (lame duck and
 *         drain) or with fewer than --min-ready (with "all": fewer than target) workers ready.
 *         "live" is ok in every state, draining included: a liveness probe built on it never
 *         restarts a container that is draining (`arbiter ctl health --live`; HTTP: /livez).
 *
 * Every waiting command takes "wait": bool (default true) and "timeout": seconds above 0 and at most
 * 86400 (default 120).
 *
 * Error codes
 *   bad_json            the line is not JSON
 *   bad_request         not an object, no "cmd", or a field of the wrong type
 *   unknown_command     "cmd" names no command; the message lists the valid ones
 *   invalid_argument    a field's value is not acceptable (e.g. scale with both workers and delta)
 *   out_of_range        a number outside its range: "workers" 1 to 1024, "delta" -1024 to +1024, "id"
 *                       1 to 1024; the resulting worker count is below 1 or above --max-workers
 *                       (scale); or MIN:MAX is not 1 <= MIN <= MAX <= --max-workers (autoscale)
 *   no_such_worker      recycle of an id that is not a current slot
 *   permission_denied   the peer's uid may not run this command
 *   line_too_long       the request exceeded CONTROL_LINE_MAX bytes; the connection is closed
 *   busy                too many clients (every one waits for a command), or this idle connection
 *                       was closed to make room for a new one; the connection is closed
 *   overtaken           scale: another scale changed the target before this one was reached; the
 *                       message says the count asked for and the count now targeted
 *   not_running         the arbiter is starting or stopping and cannot do this now
 *   timeout             the change did not complete within "timeout"; it continues in the background
 *   failed              the change did not complete (e.g. a new worker failed to boot during reload,
 *                       or an upgrade's pre-flight refused)
 *   busy_upgrading      an upgrade cannot start now (a reload, a start, a stop or another upgrade
 *                       is under way); try again
 *   unhealthy           health: not serving; the message says why (stopping, too few workers ready)
 *
 * Permissions (SO_PEERCRED): root and the arbiter's own uid may run every command; members of
 * --control-group may run read commands; everyone else gets permission_denied. */
#ifndef ARBITER_CONTROL_COMMANDS_H
#define ARBITER_CONTROL_COMMANDS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONTROL_LINE_MAX 8192
#define CONTROL_DEFAULT_TIMEOUT_S 120.0

struct arbiter;

enum control_permission { CONTROL_READ, CONTROL_WRITE };

struct control_error {
    const char *code;
    char message[512];
};

/* A parsed, validated request. */
struct control_request {
    const struct control_command *command;
    bool wait;
    double timeout;
    bool has_workers, has_delta;
    long long workers, delta;
    long long id;
    bool quick;
    bool has_range, autoscale_off;         /* autoscale: "min"/"max", or "enabled": false */
    long long autoscale_min, autoscale_max;
    bool live, all; /* health */
    /* Set by run() for done(): what the waiting command compares against. */
    uint64_t mark;
    int old_pid;
};

/* What a command handler decides. */
enum control_outcome { CONTROL_DONE, CONTROL_WAIT, CONTROL_FAILED };

struct control_command {
    const char *name;
    enum control_permission permission;
    /* Validates the command's own fields into request; returns -1 with error set. */
    int (*parse)(json_t *json, struct control_request *request, struct control_error *error);
    /* Acts; CONTROL_DONE with *reply set, CONTROL_WAIT to be polled with `done`, or CONTROL_FAILED. */
    enum control_outcome (*run)(struct arbiter *arbiter, struct control_request *request, json_t **reply,
                                struct control_error *error);
    /* For waiting commands: called on every pool change; returns CONTROL_WAIT until complete. */
    enum control_outcome (*done)(struct arbiter *arbiter, const struct control_request *request, json_t **reply,
                                 struct control_error *error);
    const char *help;
};

/* Parses one request line (pure: used by the server, the unit tests and the fuzzer). */
int control_parse_request(const char *line, size_t length, struct control_request *request, struct control_error *error);

/* The error reply object for error. */
json_t *control_error_reply(const struct control_error *error);

/* The table row for a command name, or NULL. */
const struct control_command *control_find_command(const char *name);

/* "a|b|c": the valid command names, for messages and help. */
const char *control_command_names(void);

#endif
