/* leftovers.c - nothing the app started outlives its worker's process group, or the arbiter.
 *
 * Every worker leads its own process group (setsid at spawn, or in the forked child), so what the app
 * starts plainly — a subprocess, a pool of helpers — shares the worker's group. When the worker exits,
 * for whatever reason, those children are orphans: they are sent TERM at once and KILL after
 * LEFTOVER_GRACE_MS if any is still there. A process that left the group (a daemon: fork, setsid,
 * fork) is re-parented to the arbiter, the subreaper, when its parent exits; it may legitimately
 * outlive one worker, but not the service: at stop, once the pool is empty, every child the arbiter
 * still has is one of those, and it is ended the same way before the arbiter exits. Each process is
 * logged with its pid and command line. Under systemd the unit's cgroup does this anyway
 * (KillMode=mixed ends the whole cgroup after the main process); in a shell, a container or under
 * supervisord this is the only thing that does it.
 *
 * Groups are identified by number only. A group's number is not reused while any member lives, so a
 * KILL sent while members remain reaches those; once all are gone the KILL finds no group (ESRCH). */
#define _GNU_SOURCE
#include "leftovers.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "procstat.h"

#define LEFTOVER_COMMAND_SHOWN 121

struct leftovers_scan {
    struct leftovers *leftovers;
    pid_t pgid;    /* members of this group; 0: children of the arbiter */
    int signum;    /* sent to each one found (0: only counted) */
    const char *why;
    unsigned slot_id;
    unsigned found;
};

static bool is_alive(const struct proc_identity *identity) {
    return identity->state != 'Z' && identity->state != 'X';
}

static void leftovers_visit(const struct proc_identity *identity, void *data) {
    struct leftovers_scan *scan = data;
    bool member = scan->pgid ? identity->pgrp == scan->pgid : identity->ppid == getpid();
    if (!member || !is_alive(identity) || identity->pid == getpid())
        return;
    scan->found++;
    if (!scan->signum)
        return;
    char command[256], shown[LEFTOVER_COMMAND_SHOWN];
    procstat_command(identity->pid, command, sizeof command);
    log_event(LOG_WARNING, "leftover_process", scan->slot_id, identity->pid, "%s: sending SIG%s to pid %d (%s)",
              scan->why, sigabbrev_np(scan->signum), (int)identity->pid,
              command[0] ? log_escape_excerpt(shown, sizeof shown, command, strlen(command)) : "command unknown");
    scan->leftovers->ended_total++;
    if (kill(identity->pid, scan->signum) != 0 && errno != ESRCH)
        log_warning("leftover_kill_failed", "cannot send SIG%s to pid %d: %s", sigabbrev_np(scan->signum),
                    (int)identity->pid, strerror(errno));
    /* A daemon leads a group of its own: its own children go with it. */
    if (!scan->pgid && identity->pgrp == identity->pid)
        kill(-identity->pid, scan->signum);
}

/* Logs and signals every live process of the group (pgid) or every child of the arbiter (0). */
static unsigned leftovers_signal(struct leftovers *l, pid_t pgid, int signum, unsigned slot_id, const char *why) {
    struct leftovers_scan scan = {.leftovers = l, .pgid = pgid, .signum = signum, .why = why, .slot_id = slot_id};
    if (procstat_for_each(leftovers_visit, &scan) != 0) {
        log_warning("leftover_scan_failed", "cannot list processes in /proc: %s; %s", strerror(errno),
                    pgid ? "signalling the whole group" : "processes the app left behind may keep running");
        if (pgid && signum)
            kill(-pgid, signum);
        return pgid && kill(-pgid, 0) == 0 ? 1 : 0;
    }
    if (pgid && signum)
        kill(-pgid, signum); /* also members that appeared since the scan */
    return scan.found;
}

static void leftovers_on_timer(uv_timer_t *timer);

static void leftovers_schedule(struct leftovers *l) {
    if (!l->open)
        return;
    uint64_t now = uv_now(l->loop), next = UINT64_MAX;
    for (size_t i = 0; i < l->group_count; i++)
        if (l->groups[i].kill_at_ms < next)
            next = l->groups[i].kill_at_ms;
    if (l->sweeping && now + LEFTOVER_SWEEP_POLL_MS < next)
        next = now + LEFTOVER_SWEEP_POLL_MS;
    if (next == UINT64_MAX)
        uv_timer_stop(&l->timer);
    else
        uv_timer_start(&l->timer, leftovers_on_timer, next > now ? next - now : 0, 0);
}

static void leftovers_kill_due_groups(struct leftovers *l, bool all) {
    uint64_t now = uv_now(l->loop);
    for (size_t i = 0; i < l->group_count;) {
        if (!all && l->groups[i].kill_at_ms > now) {
            i++;
            continue;
        }
        leftovers_signal(l, l->groups[i].pgid, SIGKILL, l->groups[i].slot_id,
                         "still running 1 s after its worker exited");
        l->groups[i] = l->groups[--l->group_count];
    }
}

static void leftovers_sweep_step(struct leftovers *l) {
    uint64_t now = uv_now(l->loop);
    unsigned alive = leftovers_signal(l, 0, 0, 0, NULL);
    if (alive && !l->sweep_killed && now >= l->sweep_kill_at_ms) {
        l->sweep_killed = true;
        l->sweep_give_up_ms = now + LEFTOVER_SWEEP_GIVE_UP_MS;
        leftovers_kill_due_groups(l, true);
        leftovers_signal(l, 0, SIGKILL, 0, "adopted process still running 1 s after SIGTERM");
        alive = leftovers_signal(l, 0, 0, 0, NULL);
    }
    if (alive && l->sweep_killed && now >= l->sweep_give_up_ms)
        log_error("leftover_survived", "%u adopted process%s survived SIGKILL for %.1f s (uninterruptible sleep?); "
                  "exiting without them", alive, alive == 1 ? "" : "es", LEFTOVER_SWEEP_GIVE_UP_MS / 1000.0);
    else if (alive || l->group_count)
        return;
    l->sweeping = false;
    if (l->done)
        l->done(l);
}

static void leftovers_on_timer(uv_timer_t *timer) {
    struct leftovers *l = timer->data;
    leftovers_kill_due_groups(l, false);
    if (l->sweeping)
        leftovers_sweep_step(l);
    leftovers_schedule(l);
}

void leftovers_init(struct leftovers *l, uv_loop_t *loop) {
    memset(l, 0, sizeof *l);
    l->loop = loop;
    uv_timer_init(loop, &l->timer);
    l->timer.data = l;
    l->open = true;
}

void leftovers_group_exited(struct leftovers *l, pid_t pgid, unsigned slot_id, bool hard) {
    if (pgid <= 1 || kill(-pgid, 0) != 0)
        return; /* no such group (or only members we may not signal): the common case, and cheap */
    bool room = l->open && l->group_count < LEFTOVER_GROUPS_MAX;
    if (hard || !room) {
        leftovers_signal(l, pgid, SIGKILL, slot_id, "left in the process group of its worker, which was killed");
        return;
    }
    if (leftovers_signal(l, pgid, SIGTERM, slot_id, "left in the process group of its worker, which exited") == 0)
        return; /* only zombies: the reaper has them */
    l->groups[l->group_count].pgid = pgid;
    l->groups[l->group_count].slot_id = slot_id;
    l->groups[l->group_count++].kill_at_ms = uv_now(l->loop) + LEFTOVER_GRACE_MS;
    leftovers_schedule(l);
}

void leftovers_sweep(struct leftovers *l, leftovers_done_fn done, void *data) {
    l->done = done;
    l->data = data;
    if (!l->open) {
        done(l);
        return;
    }
    if (leftovers_signal(l, 0, SIGTERM, 0, "adopted as subreaper and still running at stop") == 0 && !l->group_count) {
        done(l);
        return;
    }
    l->sweeping = true;
    l->sweep_killed = false;
    l->sweep_kill_at_ms = uv_now(l->loop) + LEFTOVER_GRACE_MS;
    leftovers_schedule(l);
}

void leftovers_close(struct leftovers *l) {
    if (!l->open)
        return;
    l->open = false;
    l->sweeping = false;
    uv_close((uv_handle_t *)&l->timer, NULL); /* embedded in struct arbiter */
}
