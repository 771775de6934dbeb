/* test_pool.c - the pool driven through a fake spawner (fake_pool.h): no processes, real libuv timers. */
#include "fake_pool.h"
#include "upgrade.h"

START_TEST(test_pool_start_spawns_the_target_count_booting) {
    fixture_start(3, 0);
    ck_assert_uint_eq(fx.pool.slot_count, 3);
    for (unsigned id = 1; id <= 3; id++)
        ck_assert_str_eq(slot_state_name(pool_find_slot(&fx.pool, id)), "booting");
    ck_assert_uint_eq(pool_ready_count(&fx.pool), 0);
    all_ready();
    ck_assert_uint_eq(pool_ready_count(&fx.pool), 3);
    fixture_stop();
}
END_TEST

START_TEST(test_crashed_worker_restarts_at_once_the_first_time) {
    fixture_start(2, 0);
    all_ready();
    worker_exits(active(1), 1, 0);
    ck_assert_ptr_null(active(1));
    RUN_UNTIL(active(1) != NULL, 1000);
    ck_assert_uint_eq(pool_find_slot(&fx.pool, 1)->restarts, 1);
    ck_assert_uint_eq(fx.spawner.spawned, 3);
    fixture_stop();
}
END_TEST

START_TEST(test_repeated_fast_failures_back_off_then_crashloop) {
    fixture_start(1, 0);
    all_ready();
    for (unsigned failure = 1; failure <= BACKOFF_CRASHLOOP_FAILURES; failure++) {
        RUN_UNTIL(active(1) != NULL, 3000);
        worker_exits(active(1), 1, 0);
        if (failure >= 2)
            ck_assert(uv_is_active((uv_handle_t *)&pool_find_slot(&fx.pool, 1)->restart_timer));
    }
    ck_assert_str_eq(slot_state_name(pool_find_slot(&fx.pool, 1)), "crashloop");
    fixture_stop();
}
END_TEST

START_TEST(test_spawn_failure_before_any_worker_was_ready_fails_the_boot_with_exit_2) {
    memset(&fx, 0, sizeof fx);
    fixture_start(0, 0); /* no slots yet: make the first spawn fail */
    fx.spawner.fail_next = 1;
    ck_assert_int_eq(pool_scale(&fx.pool, 1), 0);
    ck_assert_int_eq(fx.boot_failed_code, 0); /* decided on the loop, not under the caller's feet */
    RUN_UNTIL(fx.boot_failed_code == 2, 1000);
    ck_assert_uint_eq(fx.pool.exits[EXIT_REASON_SPAWN_FAILED], 1);
    fixture_stop();
}
END_TEST

START_TEST(test_spawn_failure_after_the_app_served_backs_off_the_slot) {
    fixture_start(1, 0);
    all_ready();
    fx.spawner.fail_next = 1;
    worker_exits(active(1), 1, 0);
    RUN_UNTIL(fx.spawner.fail_next == 0, 1000);
    ck_assert_int_eq(fx.boot_failed_code, 0);
    ck_assert_str_eq(slot_state_name(pool_find_slot(&fx.pool, 1)), "backoff");
    ck_assert_ptr_nonnull(strstr(pool_find_slot(&fx.pool, 1)->last_exit, "could not start"));
    RUN_UNTIL(active(1) != NULL, 2000);
    fixture_stop();
}
END_TEST

START_TEST(test_reload_replaces_up_to_max_surge_workers_at_once) {
    fixture_start(4, 2);
    all_ready();
    pool_reload(&fx.pool);
    ck_assert(reload_running(&fx.pool.reload));
    unsigned booting = 0;
    for (unsigned id = 1; id <= 4; id++)
        booting += successor(id) != NULL;
    ck_assert_uint_eq(booting, 2);
    fixture_stop();
}
END_TEST

START_TEST(test_reload_is_done_when_every_slot_serves_the_new_generation) {
    fixture_start(3, 2);
    all_ready();
    pool_reload(&fx.pool);
    for (int round = 0; round < 3 && reload_running(&fx.pool.reload); round++)
        for (unsigned id = 1; id <= 3; id++)
            if (successor(id))
                become_ready(successor(id));
    ck_assert_str_eq(reload_state_name(fx.pool.reload.state), "done");
    ck_assert_uint_eq(fx.reload_finished, 1);
    for (unsigned id = 1; id <= 3; id++)
        ck_assert_uint_eq(active(id)->generation, 1);
    ck_assert_uint_eq(fx.spawner.spawned, 6);
    fixture_stop();
}
END_TEST

START_TEST(test_reload_never_replaces_a_worker_already_on_the_new_generation) {
    fixture_start(2, 1);
    all_ready();
    pool_reload(&fx.pool);
    ck_assert_ptr_nonnull(successor(1));
    /* Slot 2's old worker crashes while slot 1 is being replaced: it restarts on the new code. */
    worker_exits(active(2), 1, 0);
    RUN_UNTIL(active(2) != NULL, 1000);
    ck_assert_uint_eq(active(2)->generation, 1);
    become_ready(active(2));
    become_ready(successor(1));
    ck_assert_str_eq(reload_state_name(fx.pool.reload.state), "done");
    ck_assert_ptr_null(successor(2));
    ck_assert_uint_eq(fx.spawner.spawned, 4); /* 2 at start, 1 successor, 1 restart: no second replacement */
    fixture_stop();
}
END_TEST

START_TEST(test_reload_waits_for_a_restarting_slot_instead_of_hanging_done) {
    fixture_start(1, 1);
    all_ready();
    pool_reload(&fx.pool);
    worker_exits(successor(1), 3, 0); /* the new code does not boot */
    ck_assert_str_eq(reload_state_name(fx.pool.reload.state), "failed");
    ck_assert_ptr_nonnull(strstr(fx.pool.reload.failure, "exited before it was ready"));
    ck_assert_uint_eq(pool_ready_count(&fx.pool), 1); /* the old worker keeps serving */
    ck_assert(!pool_find_slot(&fx.pool, 1)->replace_pending);
    fixture_stop();
}
END_TEST

START_TEST(test_reload_is_bounded) {
    ck_assert_uint_eq(reload_bound_ms(8, 2, 60), (4 + 1) * 60000u + 5000u);
    ck_assert_uint_eq(reload_bound_ms(1, 1, 0.5), 2 * 500u + 5000u);
    ck_assert_uint_gt(reload_bound_ms(4, 1, 0), 600000u); /* --boot-timeout 0 still has a bound */
}
END_TEST

START_TEST(test_default_surge_is_a_quarter_of_the_workers_at_least_one) {
    fixture_start(1, 0);
    ck_assert_uint_eq(pool_surge(&fx.pool), 1);
    ck_assert_int_eq(pool_scale(&fx.pool, 8), 0);
    ck_assert_uint_eq(pool_surge(&fx.pool), 2);
    ck_assert_int_eq(pool_scale(&fx.pool, 9), 0);
    ck_assert_uint_eq(pool_surge(&fx.pool), 3);
    fixture_stop();
}
END_TEST

START_TEST(test_scale_down_drains_the_highest_slots) {
    fixture_start(4, 0);
    all_ready();
    ck_assert_int_eq(pool_scale(&fx.pool, 1), 0);
    ck_assert_uint_eq(fx.pool.slot_count, 1);
    ck_assert_uint_eq(pool_live_count(&fx.pool), 4);
    unsigned draining = 0;
    for (struct worker *w = fx.pool.draining; w; w = w->next)
        draining += w->state == WORKER_DRAINING;
    ck_assert_uint_eq(draining, 3);
    fixture_stop();
}
END_TEST

START_TEST(test_retire_is_an_overlapped_replacement) {
    fixture_start(1, 0);
    all_ready();
    struct worker *old = active(1);
    say(old, "{\"type\":\"retire\",\"reason\":\"max-requests\"}");
    ck_assert_ptr_nonnull(successor(1));
    ck_assert_ptr_eq(active(1), old); /* keeps serving until the successor is ready */
    become_ready(successor(1));
    ck_assert_ptr_ne(active(1), old);
    ck_assert_str_eq(worker_state_name(old->state), "draining");
    fixture_stop();
}
END_TEST

START_TEST(test_stop_reports_empty_once_the_last_worker_exited) {
    fixture_start(2, 0);
    all_ready();
    pool_stop(&fx.pool, true);
    ck_assert_uint_eq(fx.empty, 0);
    worker_exits(active(1), 0, 0);
    ck_assert_uint_eq(fx.empty, 0);
    fixture_stop(); /* exits the last one: empty fires exactly once */
}
END_TEST

START_TEST(test_upgrade_reads_its_own_state_version_and_refuses_others_naming_both) {
    char err[256];
    ck_assert_int_eq(upgrade_check_state_version(UPGRADE_STATE_VERSION, err, sizeof err), 0);
    ck_assert_int_eq(upgrade_check_state_version(UPGRADE_STATE_VERSION + 1, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "reads upgrade state versions 1 to"));
    ck_assert_ptr_nonnull(strstr(err, "restart the service instead"));
    ck_assert_int_eq(upgrade_check_state_version(0, err, sizeof err), -1);
}
END_TEST

START_TEST(test_a_request_right_after_a_reload_started_joins_it) {
    struct reload reload = {.state = RELOAD_RUNNING, .started_ms = 5000, .last_request_ms = 5000};
    ck_assert(reload_joins(&reload, 5000));
    ck_assert(reload_joins(&reload, 5000 + RELOAD_JOIN_MS - 1));
}
END_TEST

START_TEST(test_a_burst_joins_as_long_as_its_requests_follow_each_other_closely) {
    struct reload reload = {.state = RELOAD_RUNNING, .started_ms = 5000, .last_request_ms = 5000};
    for (uint64_t now = 5000 + RELOAD_JOIN_MS / 2; now < 5000 + 4 * RELOAD_JOIN_MS; now += RELOAD_JOIN_MS / 2) {
        ck_assert(reload_joins(&reload, now));
        reload.last_request_ms = now;
    }
    ck_assert(!reload_joins(&reload, reload.last_request_ms + RELOAD_JOIN_MS));
}
END_TEST

START_TEST(test_a_request_later_or_after_the_reload_ended_starts_another) {
    struct reload reload = {.state = RELOAD_RUNNING, .started_ms = 5000, .last_request_ms = 5000};
    ck_assert(!reload_joins(&reload, 5000 + RELOAD_JOIN_MS));
    reload.state = RELOAD_DONE;
    ck_assert(!reload_joins(&reload, 5001));
    reload.state = RELOAD_FAILED;
    ck_assert(!reload_joins(&reload, 5001));
}
END_TEST

Suite *pool_suite(void) {
    Suite *suite = suite_create("pool");
    TCase *tc = tcase_create("fake spawner");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_pool_start_spawns_the_target_count_booting);
    tcase_add_test(tc, test_a_request_right_after_a_reload_started_joins_it);
    tcase_add_test(tc, test_a_burst_joins_as_long_as_its_requests_follow_each_other_closely);
    tcase_add_test(tc, test_a_request_later_or_after_the_reload_ended_starts_another);
    tcase_add_test(tc, test_crashed_worker_restarts_at_once_the_first_time);
    tcase_add_test(tc, test_repeated_fast_failures_back_off_then_crashloop);
    tcase_add_test(tc, test_spawn_failure_before_any_worker_was_ready_fails_the_boot_with_exit_2);
    tcase_add_test(tc, test_spawn_failure_after_the_app_served_backs_off_the_slot);
    tcase_add_test(tc, test_reload_replaces_up_to_max_surge_workers_at_once);
    tcase_add_test(tc, test_reload_is_done_when_every_slot_serves_the_new_generation);
    tcase_add_test(tc, test_reload_never_replaces_a_worker_already_on_the_new_generation);
    tcase_add_test(tc, test_reload_waits_for_a_restarting_slot_instead_of_hanging_done);
    tcase_add_test(tc, test_reload_is_bounded);
    tcase_add_test(tc, test_default_surge_is_a_quarter_of_the_workers_at_least_one);
    tcase_add_test(tc, test_scale_down_drains_the_highest_slots);
    tcase_add_test(tc, test_retire_is_an_overlapped_replacement);
    tcase_add_test(tc, test_stop_reports_empty_once_the_last_worker_exited);
    tcase_add_test(tc, test_upgrade_reads_its_own_state_version_and_refuses_others_naming_both);
    suite_add_tcase(suite, tc);
    return suite;
}
