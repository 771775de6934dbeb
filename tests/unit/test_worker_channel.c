/* test_worker_channel.c - what the arbiter logs when a worker sends a line that is not a message.
 *
 * The line is raw bytes from another process: the log must show it on one line, escaped, and read
 * no byte past its length (channel lines carry no NUL; ASan checks the heap copies used here). */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "unit.h"
#include "worker.h"

/* Hands worker_handle_message an exact-size heap copy of bytes and returns what it logged. */
static void log_of_bad_line(const char *bytes, size_t length, char *out, size_t size) {
    char dir[512], path[600];
    scratch_dir_create(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/stderr", dir);
    struct worker *worker = calloc(1, sizeof *worker);
    char *line = malloc(length);
    ck_assert_ptr_nonnull(worker);
    ck_assert_ptr_nonnull(line);
    memcpy(line, bytes, length);
    worker->slot_id = 3;
    worker->pid = 5000003; /* above PID_MAX_LIMIT: a signal could reach no real process */
    worker->greeted = true;  /* past the handshake: this is about lines a serving worker sends */
    log_configure(LOG_INFO, LOG_FORMAT_TEXT, "arbiter");
    int saved = unit_stderr_to_file(path);
    worker_handle_message(worker, line, length);
    unit_stderr_restore(saved);
    unit_file_read(path, out, size);
    free(line);
    free(worker);
    scratch_dir_remove(dir);
}

START_TEST(test_bad_channel_line_is_logged_on_one_line_with_newlines_escaped) {
    char log[4096];
    const char bytes[] = "oops\nFAKE critical line\r\x1b[2J";
    log_of_bad_line(bytes, sizeof bytes - 1, log, sizeof log);
    ck_assert_ptr_nonnull(strstr(log, "worker 3 (pid 5000003)"));
    ck_assert_ptr_nonnull(strstr(log, "oops\\x0aFAKE critical line\\x0d\\x1b[2J"));
    ck_assert_ptr_eq(strchr(log, '\n'), log + strlen(log) - 1);
}
END_TEST

START_TEST(test_bad_channel_line_is_read_only_up_to_its_length) {
    char log[4096];
    log_of_bad_line("short", 5, log, sizeof log);
    ck_assert_ptr_nonnull(strstr(log, "of 5 bytes"));
    ck_assert_ptr_nonnull(strstr(log, ": short\n"));
}
END_TEST

START_TEST(test_long_bad_channel_line_is_logged_as_a_bounded_excerpt) {
    char bytes[WORKER_LINE_MAX - 1];
    memset(bytes, 'a', sizeof bytes);
    char log[8192];
    log_of_bad_line(bytes, sizeof bytes, log, sizeof log);
    ck_assert_ptr_nonnull(strstr(log, "of 4095 bytes"));
    ck_assert_ptr_nonnull(strstr(log, "a...\n"));
    ck_assert_uint_lt(strlen(log), 300);
}
END_TEST

Suite *worker_channel_suite(void) {
    Suite *suite = suite_create("worker_channel");
    TCase *tc = tcase_create("bad_lines");
    tcase_add_test(tc, test_bad_channel_line_is_logged_on_one_line_with_newlines_escaped);
    tcase_add_test(tc, test_bad_channel_line_is_read_only_up_to_its_length);
    tcase_add_test(tc, test_long_bad_channel_line_is_logged_as_a_bounded_excerpt);
    suite_add_tcase(suite, tc);
    return suite;
}
