/* unit.h - the suites of unit_tests and the helpers they share.
 *
 * Each module has one suite in its own file; unit_tests.c runs them all. Helpers here create and
 * remove scratch files so that no test depends on what the machine already has, and capture a
 * function's stdout so --help output does not clutter the test log, and run a loop until a
 * condition holds (UNIT_RUN_UNTIL). */
#ifndef ARBITER_UNIT_H
#define ARBITER_UNIT_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

Suite *autoscale_suite(void);
Suite *backoff_suite(void);
Suite *child_suite(void);
Suite *config_suite(void);
Suite *control_suite(void);
Suite *environment_suite(void);
Suite *launch_suite(void);
Suite *handshake_suite(void);
Suite *line_buffer_suite(void);
Suite *listener_suite(void);
Suite *log_suite(void);
Suite *log_sink_suite(void);
Suite *metrics_suite(void);
Suite *metrics_request_suite(void);
Suite *notify_suite(void);
Suite *pool_suite(void);
Suite *stall_suite(void);
Suite *status_suite(void);
Suite *worker_channel_suite(void);
Suite *worker_state_suite(void);

/* One directory under $TMPDIR (or /tmp) for the whole run, created and removed by main. */
void scratch_root_create(void);
void scratch_root_remove(void);
/* A fresh directory under the root; remove it with scratch_dir_remove. */
void scratch_dir_create(char *out, size_t size);
/* Removes the directory and everything in it. */
void scratch_dir_remove(const char *dir);
/* Writes text to dir/name and stores the full path in out. */
void scratch_file_write(const char *dir, const char *name, const char *text, char *out, size_t size);

/* Redirects stdout to /dev/null until unit_stdout_restore; returns the saved fd. */
int unit_stdout_silence(void);
void unit_stdout_restore(int saved);

/* Points stderr (where log lines go) at path until unit_stderr_restore; returns the saved fd. */
int unit_stderr_to_file(const char *path);
void unit_stderr_restore(int saved);
/* Reads up to size - 1 bytes of path into out, NUL-terminated; returns the count. */
size_t unit_file_read(const char *path, char *out, size_t size);


static inline void unit_deadline_passed(uv_timer_t *guard) { *(bool *)guard->data = true; }

/* Runs loop until cond holds, failing the test after deadline_ms. Each turn blocks until something
 * happens on the loop (a guard timer is what happens at the deadline), so nothing polls or sleeps. */
#define UNIT_RUN_UNTIL(loop, cond, deadline_ms)                                                   \
    do {                                                                                          \
        uv_timer_t guard_;                                                                        \
        bool passed_ = false;                                                                     \
        uv_timer_init((loop), &guard_);                                                           \
        guard_.data = &passed_;                                                                   \
        uv_timer_start(&guard_, unit_deadline_passed, (deadline_ms), 0);                         \
        while (!(cond) && !passed_)                                                               \
            uv_run((loop), UV_RUN_ONCE);                                                          \
        uv_close((uv_handle_t *)&guard_, NULL);                                                   \
        uv_run((loop), UV_RUN_NOWAIT); /* the guard's close completes before it leaves scope */   \
        ck_assert_msg((cond), "not true within %d ms: %s", (int)(deadline_ms), #cond);            \
    } while (0)

#endif
