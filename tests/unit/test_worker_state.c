/* test_worker_state.c - the worker state table: which transitions a worker may make, and the
 * deadlines that end a worker's life. */
#include <string.h>

#include "unit.h"
#include "worker.h"

START_TEST(test_spawning_may_become_booting) {
    ck_assert(worker_transition_allowed(WORKER_SPAWNING, WORKER_BOOTING));
}
END_TEST

START_TEST(test_booting_may_become_ready) {
    ck_assert(worker_transition_allowed(WORKER_BOOTING, WORKER_READY));
}
END_TEST

START_TEST(test_booting_may_be_drained_before_ready) {
    ck_assert(worker_transition_allowed(WORKER_BOOTING, WORKER_DRAINING));
}
END_TEST

START_TEST(test_ready_may_become_draining) {
    ck_assert(worker_transition_allowed(WORKER_READY, WORKER_DRAINING));
}
END_TEST

START_TEST(test_draining_may_become_exited) {
    ck_assert(worker_transition_allowed(WORKER_DRAINING, WORKER_EXITED));
}
END_TEST

START_TEST(test_every_live_state_may_exit) {
    const enum worker_state live[] = {WORKER_SPAWNING, WORKER_BOOTING, WORKER_READY, WORKER_DRAINING};
    for (size_t i = 0; i < sizeof live / sizeof live[0]; i++)
        ck_assert_msg(worker_transition_allowed(live[i], WORKER_EXITED), "%s -> exited refused",
                      worker_state_name(live[i]));
}
END_TEST

START_TEST(test_exited_is_final) {
    for (int to = 0; to < WORKER_STATE_COUNT; to++)
        ck_assert_msg(!worker_transition_allowed(WORKER_EXITED, (enum worker_state)to), "exited -> %s allowed",
                      worker_state_name((enum worker_state)to));
}
END_TEST

START_TEST(test_ready_may_not_go_back_to_booting) {
    ck_assert(!worker_transition_allowed(WORKER_READY, WORKER_BOOTING));
}
END_TEST

START_TEST(test_draining_may_not_become_ready_again) {
    ck_assert(!worker_transition_allowed(WORKER_DRAINING, WORKER_READY));
}
END_TEST

START_TEST(test_spawning_may_not_skip_booting) {
    ck_assert(!worker_transition_allowed(WORKER_SPAWNING, WORKER_READY));
}
END_TEST

START_TEST(test_no_state_may_go_back_to_spawning) {
    for (int from = 0; from < WORKER_STATE_COUNT; from++)
        ck_assert(!worker_transition_allowed((enum worker_state)from, WORKER_SPAWNING));
}
END_TEST

START_TEST(test_states_outside_the_table_are_refused) {
    ck_assert(!worker_transition_allowed(WORKER_STATE_COUNT, WORKER_EXITED));
    ck_assert(!worker_transition_allowed(WORKER_READY, WORKER_STATE_COUNT));
    ck_assert_str_eq(worker_state_name(WORKER_STATE_COUNT), "invalid");
}
END_TEST

START_TEST(test_state_names) {
    ck_assert_str_eq(worker_state_name(WORKER_SPAWNING), "spawning");
    ck_assert_str_eq(worker_state_name(WORKER_BOOTING), "booting");
    ck_assert_str_eq(worker_state_name(WORKER_READY), "ready");
    ck_assert_str_eq(worker_state_name(WORKER_DRAINING), "draining");
    ck_assert_str_eq(worker_state_name(WORKER_EXITED), "exited");
}
END_TEST

/* The shim's stop budget is --graceful-timeout from its signal handler; the kill comes a margin
 * later (docs/worker-channel.md, "Stop deadlines"). A timeout of 0 used to disarm the kill. */
START_TEST(test_graceful_kill_comes_a_margin_after_the_graceful_timeout) {
    ck_assert_uint_eq(worker_graceful_kill_ms(30), 30000 + WORKER_KILL_MARGIN_MS);
    ck_assert_uint_eq(worker_graceful_kill_ms(2.5), 2500 + WORKER_KILL_MARGIN_MS);
    ck_assert_uint_eq(worker_graceful_kill_ms(0), WORKER_KILL_MARGIN_MS);
}
END_TEST

/* Once the boot timeout fired (stack dump, SIGKILL a second later), a late ready changes nothing:
 * no transition, so no deadline is re-armed (this worker has no libuv handles to arm). */
static void count_ready(struct worker *worker, void *data) {
    (void)worker;
    ++*(unsigned *)data;
}

START_TEST(test_ready_after_the_boot_timeout_fired_is_ignored) {
    struct config config;
    struct worker worker;
    unsigned ready_events = 0;
    memset(&config, 0, sizeof config);
    memset(&worker, 0, sizeof worker);
    struct worker_env env = {.config = &config, .events = {.ready = count_ready, .data = &ready_events}};
    worker.env = &env;
    worker.slot_id = 1;
    worker.pid = 5000001; /* above PID_MAX_LIMIT: no signal can reach a real process */
    worker.greeted = true;
    worker.state = WORKER_BOOTING;
    worker.kill_reason = KILL_BOOT_TIMEOUT;
    worker.stack_dump_requested = true;
    const char *ready = "{\"type\":\"ready\",\"pid\":5000001}";
    worker_handle_message(&worker, ready, strlen(ready));
    ck_assert_int_eq(worker.state, WORKER_BOOTING);
    ck_assert_int_eq(worker.kill_reason, KILL_BOOT_TIMEOUT);
    ck_assert_uint_eq(worker.ready_ms, 0);
    ck_assert_uint_eq(ready_events, 0); /* the pool was never told: it is not ever_ready */
}
END_TEST

Suite *worker_state_suite(void) {
    Suite *suite = suite_create("worker_state");
    TCase *tc = tcase_create("transitions");
    tcase_add_test(tc, test_spawning_may_become_booting);
    tcase_add_test(tc, test_booting_may_become_ready);
    tcase_add_test(tc, test_booting_may_be_drained_before_ready);
    tcase_add_test(tc, test_ready_may_become_draining);
    tcase_add_test(tc, test_draining_may_become_exited);
    tcase_add_test(tc, test_every_live_state_may_exit);
    tcase_add_test(tc, test_exited_is_final);
    tcase_add_test(tc, test_ready_may_not_go_back_to_booting);
    tcase_add_test(tc, test_draining_may_not_become_ready_again);
    tcase_add_test(tc, test_spawning_may_not_skip_booting);
    tcase_add_test(tc, test_no_state_may_go_back_to_spawning);
    tcase_add_test(tc, test_states_outside_the_table_are_refused);
    tcase_add_test(tc, test_state_names);
    tcase_add_test(tc, test_graceful_kill_comes_a_margin_after_the_graceful_timeout);
    tcase_add_test(tc, test_ready_after_the_boot_timeout_fired_is_ignored);
    suite_add_tcase(suite, tc);
    return suite;
}
