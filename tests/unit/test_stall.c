/* test_stall.c - when the arbiter's own loop counts as stalled (stall.h). */
#include <stdint.h>

#include "stall.h"
#include "unit.h"

#define MS 1000000ull /* nanoseconds */

START_TEST(test_a_poll_that_returns_on_time_is_not_late) {
    ck_assert_uint_eq(stall_lateness_ms(1000 * MS, 1500 * MS, 500), 0);
}
END_TEST

START_TEST(test_a_poll_woken_early_by_an_event_is_not_late) {
    ck_assert_uint_eq(stall_lateness_ms(1000 * MS, 1010 * MS, 500), 0);
}
END_TEST

START_TEST(test_a_stopped_process_is_late_by_the_pause_minus_what_it_meant_to_wait) {
    /* SIGSTOP for 6 s during a poll of 250 ms */
    ck_assert_uint_eq(stall_lateness_ms(1000 * MS, 7000 * MS, 250), 5750);
}
END_TEST

START_TEST(test_a_poll_without_a_timeout_is_never_late) {
    ck_assert_uint_eq(stall_lateness_ms(1000 * MS, 90000 * MS, -1), 0);
}
END_TEST

START_TEST(test_a_clock_that_did_not_move_is_not_late) {
    ck_assert_uint_eq(stall_lateness_ms(1000 * MS, 1000 * MS, 0), 0);
    ck_assert_uint_eq(stall_lateness_ms(1000 * MS, 900 * MS, 0), 0);
}
END_TEST

START_TEST(test_the_threshold_is_a_heartbeat_interval_of_the_timeout) {
    ck_assert_uint_eq(stall_threshold_ms(2.0), 500);
    ck_assert_uint_eq(stall_threshold_ms(30.0), 7500);
}
END_TEST

START_TEST(test_the_threshold_is_never_below_scheduling_noise) {
    ck_assert_uint_eq(stall_threshold_ms(0.2), STALL_MIN_MS);
    ck_assert_uint_eq(stall_threshold_ms(0), 1000);
}
END_TEST

Suite *stall_suite(void) {
    Suite *suite = suite_create("stall");
    TCase *tc = tcase_create("stall");
    tcase_add_test(tc, test_a_poll_that_returns_on_time_is_not_late);
    tcase_add_test(tc, test_a_poll_woken_early_by_an_event_is_not_late);
    tcase_add_test(tc, test_a_stopped_process_is_late_by_the_pause_minus_what_it_meant_to_wait);
    tcase_add_test(tc, test_a_poll_without_a_timeout_is_never_late);
    tcase_add_test(tc, test_a_clock_that_did_not_move_is_not_late);
    tcase_add_test(tc, test_the_threshold_is_a_heartbeat_interval_of_the_timeout);
    tcase_add_test(tc, test_the_threshold_is_never_below_scheduling_noise);
    suite_add_tcase(suite, tc);
    return suite;
}
