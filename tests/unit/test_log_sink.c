/* test_log_sink.c - the bounded, never-blocking log output: what is dropped, counted, kept in order,
 * and said once. Real pipes and files; /dev/full stands for a full disk. */
#define _GNU_SOURCE /* F_SETPIPE_SZ */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log_sink.h"
#include "unit.h"

static struct {
    unsigned resumed, failed;
    uint64_t dropped;
    int resumed_failure, failure;
} seen;

static void on_resumed(uint64_t dropped, double seconds, int failure) {
    (void)seconds;
    seen.resumed++;
    seen.dropped = dropped;
    seen.resumed_failure = failure;
}

static void on_failed(int error) {
    seen.failed++;
    seen.failure = error;
}

/* Starts from an empty buffer on a scratch file, whatever an earlier test left (CK_FORK=no). */
static void sink_reset(void) {
    char path[] = "/tmp/arbiter-sink-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    char err[256];
    log_sink_set_callbacks(on_resumed, on_failed);
    ck_assert_int_eq(log_sink_set_output(fd, "scratch", err, sizeof err), 0);
    ck_assert_uint_eq(log_sink_buffered(), 0);
    memset(&seen, 0, sizeof seen);
}

static bool append_numbered(unsigned number, size_t width) {
    char line[2048];
    ck_assert_uint_lt(width, sizeof line);
    memset(line, 'x', width);
    int n = snprintf(line, width, "%08u ", number);
    line[n] = ' ';
    line[width - 1] = '\n';
    struct iovec piece = {line, width};
    return log_sink_append(&piece, 1);
}

/* A 4 KiB pipe nobody reads: returns its read end; the write end is the sink's. */
static int sink_on_small_pipe(int *write_end) {
    int ends[2];
    ck_assert_int_eq(pipe(ends), 0);
    ck_assert_int_ge(fcntl(ends[1], F_SETPIPE_SZ, 4096), 4096);
    char err[256];
    ck_assert_int_eq(log_sink_set_output(ends[1], "pipe", err, sizeof err), 0);
    *write_end = ends[1];
    return ends[0];
}

START_TEST(test_a_pipe_is_written_through_a_private_non_blocking_description) {
    sink_reset();
    int write_end, read_end = sink_on_small_pipe(&write_end);
    ck_assert_int_eq(log_sink_mode(), LOG_SINK_PRIVATE);
    ck_assert_int_ne(log_sink_fd(), write_end);
    /* Whoever else shares the pipe's description still sees it blocking. */
    ck_assert_int_eq(fcntl(write_end, F_GETFL) & O_NONBLOCK, 0);
    close(read_end);
    sink_reset();
}
END_TEST

START_TEST(test_lines_that_do_not_fit_are_dropped_whole_and_counted_and_nothing_waits) {
    sink_reset();
    int write_end, read_end = sink_on_small_pipe(&write_end);
    uint64_t dropped_before = log_sink_lines_dropped();
    unsigned refused = 0;
    for (unsigned i = 0; i < 1000; i++) { /* 1 MB into a 4 KiB pipe and a 256 KiB buffer */
        if (!append_numbered(i, 1000))
            refused++;
        log_sink_flush();
    }
    ck_assert_uint_gt(refused, 0);
    ck_assert_uint_eq(log_sink_lines_dropped() - dropped_before, refused);
    ck_assert_uint_le(log_sink_buffered(), LOG_SINK_CAPACITY);
    ck_assert_uint_eq(seen.failed, 0); /* blocked (EAGAIN) is not a failure */
    close(read_end);
    sink_reset();
}
END_TEST

START_TEST(test_a_drained_pipe_gets_the_kept_lines_in_order_then_one_notice_with_the_count) {
    sink_reset();
    int write_end, read_end = sink_on_small_pipe(&write_end);
    unsigned refused = 0;
    for (unsigned i = 0; i < 1000; i++) {
        refused += !append_numbered(i, 1000);
        log_sink_flush();
    }
    ck_assert_int_eq(fcntl(read_end, F_SETFL, O_NONBLOCK), 0);
    static char received[2 * LOG_SINK_CAPACITY];
    size_t length = 0;
    for (int round = 0; round < 100000 && (log_sink_buffered() > 0 || seen.resumed == 0); round++) {
        ssize_t n = read(read_end, received + length, sizeof received - length);
        if (n > 0)
            length += (size_t)n;
        log_sink_flush();
    }
    ssize_t n;
    while ((n = read(read_end, received + length, sizeof received - length)) > 0)
        length += (size_t)n;
    ck_assert_uint_eq(seen.resumed, 1);
    ck_assert_uint_eq(seen.dropped, refused);
    ck_assert_int_eq(seen.resumed_failure, 0);
    /* Whole lines, numbers rising: kept lines never reorder, dropped ones leave gaps only. */
    ck_assert_uint_eq(length % 1000, 0);
    long previous = -1;
    for (size_t at = 0; at < length; at += 1000) {
        long number = strtol(received + at, NULL, 10);
        ck_assert_int_gt(number, previous);
        ck_assert_int_eq(received[at + 999], '\n');
        previous = number;
    }
    close(read_end);
    sink_reset();
}
END_TEST

START_TEST(test_a_regular_file_is_written_directly) {
    sink_reset();
    ck_assert_int_eq(log_sink_mode(), LOG_SINK_DIRECT);
    ck_assert(append_numbered(1, 100));
    log_sink_flush();
    ck_assert_uint_eq(log_sink_buffered(), 0);
}
END_TEST

START_TEST(test_a_full_disk_is_reported_once_counted_and_resumes_on_a_new_output) {
    sink_reset();
    int full = open("/dev/full", O_WRONLY | O_CLOEXEC);
    ck_assert_int_ge(full, 0);
    char err[256];
    ck_assert_int_eq(log_sink_set_output(full, "/dev/full", err, sizeof err), 0);
    uint64_t errors_before = log_sink_write_errors();
    for (unsigned i = 0; i < 50; i++) {
        ck_assert(append_numbered(i, 100)); /* buffered, not lost, while there is room */
        log_sink_flush();
    }
    ck_assert_uint_eq(seen.failed, 1);
    ck_assert_int_eq(seen.failure, ENOSPC);
    ck_assert_uint_gt(log_sink_write_errors(), errors_before);
    ck_assert_uint_eq(log_sink_buffered(), 50 * 100);
    char path[] = "/tmp/arbiter-sink-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(log_sink_set_output(fd, path, err, sizeof err), 0); /* space returned */
    ck_assert_uint_eq(log_sink_buffered(), 0);
    ck_assert_uint_eq(seen.resumed, 1);
    ck_assert_int_eq(seen.resumed_failure, ENOSPC);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_size, 50 * 100);
    unlink(path);
    sink_reset();
}
END_TEST

Suite *log_sink_suite(void) {
    Suite *suite = suite_create("log_sink");
    TCase *tc = tcase_create("output");
    tcase_add_test(tc, test_a_pipe_is_written_through_a_private_non_blocking_description);
    tcase_add_test(tc, test_lines_that_do_not_fit_are_dropped_whole_and_counted_and_nothing_waits);
    tcase_add_test(tc, test_a_drained_pipe_gets_the_kept_lines_in_order_then_one_notice_with_the_count);
    tcase_add_test(tc, test_a_regular_file_is_written_directly);
    tcase_add_test(tc, test_a_full_disk_is_reported_once_counted_and_resumes_on_a_new_output);
    suite_add_tcase(suite, tc);
    return suite;
}
