/* test_child.c - one child process (child.h): real processes (/bin/sh) through the real reaper.
 *
 * Each test spawns a shell through child.c, runs the loop until the exit arrived and every handle
 * closed, and checks what the owner saw: the channel's lines, the exit once, the close once. */
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "child.h"
#include "log.h"
#include "unit.h"

struct owner {
    struct child child;
    unsigned lines, exits, closes;
    char last_line[128];
    int64_t exit_status;
    int term_signal;
};

static void on_line(struct child *child, const char *line, size_t length) {
    struct owner *o = child->data;
    o->lines++;
    snprintf(o->last_line, sizeof o->last_line, "%.*s", (int)length, line);
}

static void on_child_exit(struct child *child, int64_t exit_status, int term_signal) {
    struct owner *o = child->data;
    o->exits++;
    o->exit_status = exit_status;
    o->term_signal = term_signal;
    child_close(child);
}

static void on_closed(struct child *child) { ((struct owner *)child->data)->closes++; }

static const struct child_ops test_ops = {.kind = "test", .line = on_line, .exited = on_child_exit, .closed = on_closed};

static uv_loop_t loop;
static struct reaper reaper;

static void setup(void) {
    log_configure(LOG_CRITICAL, LOG_FORMAT_TEXT, "test");
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    memset(&reaper, 0, sizeof reaper);
    char err[256];
    ck_assert_int_eq(reaper_start(&reaper, &loop, err, sizeof err), 0);
}

static void teardown(void) {
    reaper_close(&reaper);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}

/* Runs the loop until the owner's child is closed, at most 10 s. */
static void run_until_closed(struct owner *o) {
    UNIT_RUN_UNTIL(&loop, o->closes > 0, 10000);
    ck_assert_uint_eq(o->closes, 1);
}

static int spawn_shell(struct owner *o, const char *script, bool with_channel, char *err, size_t err_size) {
    char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
    char *env[] = {"PATH=/usr/bin:/bin", NULL};
    child_init(&o->child, &test_ops, o, &loop, &reaper, 7);
    int peer_fd = -1;
    if (with_channel ? child_open_pair(&o->child, true, &peer_fd, err, err_size) != 0
                     : child_open(&o->child, -1, true, err, err_size) != 0)
        return -1;
    struct child_spec spec = {.argv = argv, .env = env, .output = true,
                              .channel_at = with_channel ? 0 : CHILD_NO_CHANNEL};
    int pid = child_spawn(&o->child, &spec, peer_fd, err, err_size);
    if (pid > 0)
        child_started(&o->child, pid);
    return pid;
}

START_TEST(test_the_exit_status_arrives_once_through_the_reaper) {
    struct owner o = {0};
    char err[256];
    ck_assert_int_gt(spawn_shell(&o, "exit 3", false, err, sizeof err), 0);
    run_until_closed(&o);
    ck_assert_uint_eq(o.exits, 1);
    ck_assert_int_eq(o.exit_status, 3);
    ck_assert_int_eq(o.term_signal, 0);
    ck_assert_ptr_null(reaper.watched); /* nobody waits for it any more */
}
END_TEST

START_TEST(test_a_signal_ends_it_with_the_signal) {
    struct owner o = {0};
    char err[256];
    ck_assert_int_gt(spawn_shell(&o, "kill -TERM $$; sleep 5", false, err, sizeof err), 0);
    run_until_closed(&o);
    ck_assert_uint_eq(o.exits, 1);
    ck_assert_int_eq(o.term_signal, SIGTERM);
}
END_TEST

START_TEST(test_lines_on_the_channel_reach_the_owner_before_the_exit) {
    struct owner o = {0};
    char err[256];
    ck_assert_int_gt(spawn_shell(&o, "printf 'one\\n{\"type\":\"two\"}\\n' >&3; read x <&3", true, err, sizeof err), 0);
    UNIT_RUN_UNTIL(&loop, o.lines >= 2, 10000);
    ck_assert_uint_eq(o.lines, 2);
    ck_assert_str_eq(o.last_line, "{\"type\":\"two\"}");
    ck_assert_int_ge(o.child.channel_fd, 0);
    ck_assert_int_eq(write(o.child.channel_fd, "bye\n", 4), 4); /* the shell's read returns: it exits 0 */
    run_until_closed(&o);
    ck_assert_uint_eq(o.exits, 1);
    ck_assert_int_eq(o.exit_status, 0);
}
END_TEST

START_TEST(test_a_spawn_that_fails_says_why_and_closes_once) {
    struct owner o = {0};
    char err[256] = "";
    char *argv[] = {"/nonexistent/python3.99", NULL};
    child_init(&o.child, &test_ops, &o, &loop, &reaper, 1);
    int peer_fd = -1;
    ck_assert_int_eq(child_open_pair(&o.child, true, &peer_fd, err, sizeof err), 0);
    struct child_spec spec = {.argv = argv, .env = argv + 1, .output = true, .channel_at = 0};
    ck_assert_int_lt(child_spawn(&o.child, &spec, peer_fd, err, sizeof err), 0);
    ck_assert_ptr_nonnull(strstr(err, "cannot start /nonexistent/python3.99"));
    child_close(&o.child);
    run_until_closed(&o);
    ck_assert_uint_eq(o.exits, 0);
}
END_TEST

START_TEST(test_a_child_that_died_before_it_was_watched_exits_at_once) {
    /* As a zygote's grandchild: reaped as an unknown child first, watched later. */
    struct owner o = {0};
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(5);
    UNIT_RUN_UNTIL(&loop, reaper.recent_next != 0, 10000); /* the reaper's SIGCHLD handler reaps it as unknown */
    child_init(&o.child, &test_ops, &o, &loop, &reaper, 2);
    ck_assert(child_started(&o.child, pid));
    ck_assert_uint_eq(o.exits, 1);
    ck_assert_int_eq(o.exit_status, 5);
    ck_assert_uint_eq(o.closes, 1); /* nothing was opened: closed at once */
}
END_TEST

Suite *child_suite(void) {
    Suite *s = suite_create("child");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_the_exit_status_arrives_once_through_the_reaper);
    tcase_add_test(tc, test_a_signal_ends_it_with_the_signal);
    tcase_add_test(tc, test_lines_on_the_channel_reach_the_owner_before_the_exit);
    tcase_add_test(tc, test_a_spawn_that_fails_says_why_and_closes_once);
    tcase_add_test(tc, test_a_child_that_died_before_it_was_watched_exits_at_once);
    suite_add_tcase(s, tc);
    return s;
}
