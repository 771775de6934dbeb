/* reaper.c - every child of the arbiter is reaped here.
 *
 * The arbiter is a subreaper (PR_SET_CHILD_SUBREAPER), or PID 1 in a container, so three kinds of
 * process end up as its children: workers it spawned with uv_spawn, workers a zygote forked (the
 * zygote double-forks, so they are re-parented to us), and whatever the app started and orphaned.
 * One SIGCHLD handler reaps them all with waitpid(-1) and hands each exit to the watcher of that pid;
 * an exit nobody watches is an orphan, reaped so it never lingers as a zombie.
 *
 * libuv reaps the processes it spawned with waitpid(pid) in its own SIGCHLD handler. Whichever of
 * the two handlers runs first reaps the child; libuv treats ECHILD as "someone else reaped it"
 * (src/unix/process.c), and its exit callback funnels into the same place ours does, so every
 * exit is delivered exactly once either way. */
#include "reaper.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "log.h"

void reaper_decode_status(int status, int64_t *exit_status, int *term_signal) {
    *exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
    *term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

static struct reaper_entry *reaper_take(struct reaper *reaper, int pid) {
    for (struct reaper_entry **p = &reaper->watched; *p; p = &(*p)->next) {
        if ((*p)->pid == pid) {
            struct reaper_entry *entry = *p;
            *p = entry->next;
            entry->next = NULL;
            return entry;
        }
    }
    return NULL;
}

static void reaper_remember(struct reaper *reaper, int pid, int status) {
    reaper->recent[reaper->recent_next].pid = pid;
    reaper->recent[reaper->recent_next].status = status;
    reaper->recent_next = (reaper->recent_next + 1) % REAPER_RECENT_MAX;
}

void reaper_collect(struct reaper *reaper) {
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid == 0)
            return;
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            if (errno != ECHILD)
                log_error("reap_failed", "waitpid() failed: %s", strerror(errno));
            return;
        }
        struct reaper_entry *entry = reaper_take(reaper, pid);
        if (entry) {
            int64_t exit_status;
            int term_signal;
            reaper_decode_status(status, &exit_status, &term_signal);
            entry->exited(entry, exit_status, term_signal);
            continue;
        }
        reaper->orphans_reaped++;
        reaper_remember(reaper, pid, status);
        log_debug("orphan_reaped", "reaped pid %d (%s %d), a process the app left behind", (int)pid,
                  WIFSIGNALED(status) ? "signal" : "exit code", WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    }
}

static void reaper_on_sigchld(uv_signal_t *handle, int signum) {
    (void)signum;
    reaper_collect(handle->data);
}

int reaper_start(struct reaper *reaper, uv_loop_t *loop, char *err, size_t err_size) {
    reaper->loop = loop; /* watches may already be registered: adopted workers after an upgrade */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
        snprintf(err, err_size,
                 "prctl(PR_SET_CHILD_SUBREAPER) failed: %s. arbiter needs Linux >= 3.4 to supervise forked workers "
                 "and reap orphaned processes",
                 strerror(errno));
        return -1;
    }
    uv_signal_init(loop, &reaper->sigchld);
    reaper->sigchld.data = reaper;
    reaper->started = true;
    int rc = uv_signal_start(&reaper->sigchld, reaper_on_sigchld, SIGCHLD);
    if (rc != 0) {
        snprintf(err, err_size, "cannot handle SIGCHLD: %s", uv_strerror(rc));
        return -1;
    }
    /* Children that exited before the handler existed (a re-exec inherits them) send no new signal. */
    reaper_collect(reaper);
    return 0;
}

bool reaper_watch(struct reaper *reaper, struct reaper_entry *entry, int64_t *exit_status, int *term_signal) {
    for (size_t i = 0; i < REAPER_RECENT_MAX; i++) {
        if (reaper->recent[i].pid == entry->pid && entry->pid > 0) {
            reaper_decode_status(reaper->recent[i].status, exit_status, term_signal);
            reaper->recent[i].pid = 0;
            reaper->orphans_reaped--; /* it was ours after all */
            return true;
        }
    }
    entry->next = reaper->watched;
    reaper->watched = entry;
    return false;
}

void reaper_unwatch(struct reaper *reaper, struct reaper_entry *entry) {
    for (struct reaper_entry **p = &reaper->watched; *p; p = &(*p)->next) {
        if (*p == entry) {
            *p = entry->next;
            entry->next = NULL;
            return;
        }
    }
}

void reaper_close(struct reaper *reaper) {
    if (reaper->started)
        uv_close((uv_handle_t *)&reaper->sigchld, NULL); /* embedded in struct arbiter */
    reaper->started = false;
    reaper->watched = NULL;
}
