/* leftovers.h - what the app left running: a worker's process group once the worker exited, and at
 * stop the processes the arbiter adopted as subreaper. Each is sent TERM, then KILL after
 * LEFTOVER_GRACE_MS, and logged with its pid and command. */
#ifndef ARBITER_LEFTOVERS_H
#define ARBITER_LEFTOVERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#define LEFTOVER_GRACE_MS 1000u
#define LEFTOVER_GROUPS_MAX 64       /* groups in their grace period at once; more are killed at once */
#define LEFTOVER_SWEEP_POLL_MS 50u   /* how often a stop looks whether the adopted processes are gone */
#define LEFTOVER_SWEEP_GIVE_UP_MS 2000u /* after the KILL: a process in uninterruptible sleep is left */

struct leftovers;
typedef void (*leftovers_done_fn)(struct leftovers *leftovers);

struct leftovers {
    uv_loop_t *loop;
    uv_timer_t timer; /* the earliest of: a group's KILL, the sweep's next look */
    bool open;
    struct {
        pid_t pgid;
        unsigned slot_id;
        uint64_t kill_at_ms;
    } groups[LEFTOVER_GROUPS_MAX];
    size_t group_count;
    /* The stop's sweep of adopted processes. */
    bool sweeping;
    bool sweep_killed;
    uint64_t sweep_kill_at_ms;
    uint64_t sweep_give_up_ms;
    leftovers_done_fn done;
    void *data;
    uint64_t ended_total; /* processes sent TERM or KILL here, for status */
};

void leftovers_init(struct leftovers *leftovers, uv_loop_t *loop);

/* A worker that led process group pgid has exited: whatever is still in the group gets TERM (KILL
 * right away when hard: the worker itself was killed hard), then KILL after the grace period. */
void leftovers_group_exited(struct leftovers *leftovers, pid_t pgid, unsigned slot_id, bool hard);

/* At stop, once every worker and the zygote are gone: every live child of the arbiter is a process
 * adopted as subreaper; each gets TERM (its group too when it leads one), then KILL. done is called
 * once they and the groups in their grace period are gone, or after LEFTOVER_SWEEP_GIVE_UP_MS. */
void leftovers_sweep(struct leftovers *leftovers, leftovers_done_fn done, void *data);

void leftovers_close(struct leftovers *leftovers);

#endif
