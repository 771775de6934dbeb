/* test_backoff.c - the restart delay of a slot whose workers keep dying. */
#include <stdint.h>

#include "backoff.h"
#include "unit.h"

START_TEST(test_first_failure_restarts_at_once) {
    struct backoff backoff = {0};
    ck_assert_uint_eq(backoff_record_failure(&backoff, 0), 0);
}
END_TEST

START_TEST(test_repeated_failures_wait_100ms_doubling) {
    struct backoff backoff = {0};
    const uint64_t expected[] = {0, 100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600};
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
        ck_assert_uint_eq(backoff_record_failure(&backoff, 0), expected[i]);
}
END_TEST

START_TEST(test_delay_is_capped_at_30_seconds) {
    struct backoff backoff = {0};
    for (int i = 0; i < 10; i++)
        backoff_record_failure(&backoff, 0);
    ck_assert_uint_eq(backoff_record_failure(&backoff, 0), BACKOFF_MAX_MS);
    for (int i = 0; i < 2000; i++)
        ck_assert_uint_eq(backoff_record_failure(&backoff, 0), BACKOFF_MAX_MS);
}
END_TEST

START_TEST(test_worker_ready_long_enough_resets_the_delay) {
    struct backoff backoff = {0};
    for (int i = 0; i < 6; i++)
        backoff_record_failure(&backoff, 0);
    ck_assert_uint_eq(backoff_record_failure(&backoff, BACKOFF_HEALTHY_MS), 0);
    ck_assert_uint_eq(backoff_record_failure(&backoff, 0), 100);
}
END_TEST

START_TEST(test_worker_ready_briefly_does_not_reset_the_delay) {
    struct backoff backoff = {0};
    backoff_record_failure(&backoff, 0);
    backoff_record_failure(&backoff, 0);
    ck_assert_uint_eq(backoff_record_failure(&backoff, BACKOFF_HEALTHY_MS - 1), 200);
}
END_TEST

START_TEST(test_crash_loop_after_consecutive_failures) {
    struct backoff backoff = {0};
    for (unsigned i = 1; i < BACKOFF_CRASHLOOP_FAILURES; i++) {
        backoff_record_failure(&backoff, 0);
        ck_assert(!backoff_is_crashloop(&backoff));
    }
    backoff_record_failure(&backoff, 0);
    ck_assert(backoff_is_crashloop(&backoff));
}
END_TEST

START_TEST(test_healthy_worker_ends_the_crash_loop) {
    struct backoff backoff = {0};
    for (unsigned i = 0; i < BACKOFF_CRASHLOOP_FAILURES; i++)
        backoff_record_failure(&backoff, 0);
    ck_assert(backoff_is_crashloop(&backoff));
    backoff_record_failure(&backoff, BACKOFF_HEALTHY_MS);
    ck_assert(!backoff_is_crashloop(&backoff));
}
END_TEST

START_TEST(test_fresh_slot_is_not_a_crash_loop) {
    struct backoff backoff = {0};
    ck_assert(!backoff_is_crashloop(&backoff));
}
END_TEST

Suite *backoff_suite(void) {
    Suite *suite = suite_create("backoff");
    TCase *tc = tcase_create("backoff");
    tcase_add_test(tc, test_first_failure_restarts_at_once);
    tcase_add_test(tc, test_repeated_failures_wait_100ms_doubling);
    tcase_add_test(tc, test_delay_is_capped_at_30_seconds);
    tcase_add_test(tc, test_worker_ready_long_enough_resets_the_delay);
    tcase_add_test(tc, test_worker_ready_briefly_does_not_reset_the_delay);
    tcase_add_test(tc, test_crash_loop_after_consecutive_failures);
    tcase_add_test(tc, test_healthy_worker_ends_the_crash_loop);
    tcase_add_test(tc, test_fresh_slot_is_not_a_crash_loop);
    suite_add_tcase(suite, tc);
    return suite;
}
