/* test_status.c - the read model (status.c) over a real pool driven by the fake spawner (fake_pool.h):
 * what the walk visits, what the census counts, the state name and the health rule. */
#include "fake_pool.h"
#include "status.h"
#include "status_json.h"

static enum arbiter_state state;
static uint64_t started_ms;

static struct status_sources sources(void) {
    return (struct status_sources){.loop = &fx.loop, .config = &fx.config, .state = &state, .started_ms = &started_ms,
                                   .pool = &fx.pool};
}

struct visits {
    unsigned count, empty, successors, draining;
    unsigned ids[16];
};

static void record(const struct status_worker *view, void *data) {
    struct visits *v = data;
    ck_assert_uint_lt(v->count, 16);
    v->ids[v->count++] = view->id;
    if (!view->worker)
        v->empty++;
    else if (!view->slot && view->worker->slot)
        v->successors++;
    else if (!view->slot)
        v->draining++;
}

START_TEST(test_census_counts_booting_then_ready) {
    fixture_start(3, 0);
    struct status_sources s = sources();
    state = ARBITER_STARTING;
    struct status_census census;
    status_take_census(&s, &census);
    ck_assert_str_eq(census.state, "starting");
    ck_assert_uint_eq(census.target, 3);
    ck_assert_uint_eq(census.live, 3);
    ck_assert_uint_eq(census.ready, 0);
    ck_assert_uint_eq(census.buckets[STATUS_BOOTING], 3);
    all_ready();
    state = ARBITER_RUNNING;
    status_take_census(&s, &census);
    ck_assert_str_eq(census.state, "running");
    ck_assert_uint_eq(census.ready, 3);
    ck_assert_uint_eq(census.buckets[STATUS_READY], 3);
    ck_assert_uint_eq(census.buckets[STATUS_BOOTING], 0);
    fixture_stop();
}
END_TEST

START_TEST(test_walk_visits_slots_in_id_order_and_empty_slots_only_when_asked) {
    fixture_start(3, 0);
    all_ready();
    struct status_sources s = sources();
    state = ARBITER_RUNNING;
    fx.spawner.fail_next = 1; /* slot 2's restart fails: the slot has no worker */
    worker_exits(active(2), 1, 0);
    struct visits with = {0}, without = {0};
    status_walk(&s, true, record, &with);
    status_walk(&s, false, record, &without);
    ck_assert_uint_eq(with.count, 3);
    ck_assert_uint_eq(with.ids[0], 1);
    ck_assert_uint_eq(with.ids[1], 2);
    ck_assert_uint_eq(with.ids[2], 3);
    ck_assert_uint_eq(with.empty, 1);
    ck_assert_uint_eq(without.count, 2);
    ck_assert_uint_eq(without.empty, 0);
    struct status_census census;
    status_take_census(&s, &census);
    ck_assert_uint_eq(census.live, 2);
    ck_assert_uint_eq(census.buckets[STATUS_BACKOFF] + census.buckets[STATUS_CRASHLOOP], 1);
    fixture_stop();
}
END_TEST

START_TEST(test_walk_sees_a_successor_then_the_draining_worker) {
    fixture_start(2, 0);
    all_ready();
    struct status_sources s = sources();
    state = ARBITER_RUNNING;
    struct worker *old = active(1);
    ck_assert_int_eq(pool_recycle(&fx.pool, 1), 0);
    RUN_UNTIL(successor(1) != NULL, 1000);
    struct visits booting = {0};
    status_walk(&s, false, record, &booting);
    ck_assert_uint_eq(booting.count, 3);
    ck_assert_uint_eq(booting.successors, 1);
    become_ready(successor(1));
    RUN_UNTIL(active(1) != old, 1000);
    struct visits drained = {0};
    status_walk(&s, false, record, &drained);
    ck_assert_uint_eq(drained.count, 3);
    ck_assert_uint_eq(drained.draining, 1);
    struct status_census census;
    status_take_census(&s, &census);
    ck_assert_uint_eq(census.ready, 2);
    ck_assert_uint_eq(census.buckets[STATUS_DRAINING], 1);
    fixture_stop();
}
END_TEST

START_TEST(test_health_follows_min_ready_and_stopping) {
    fixture_start(2, 0);
    struct status_sources s = sources();
    state = ARBITER_RUNNING;
    fx.config.min_ready = 2;
    char reason[192];
    ck_assert_int_eq(status_health(&s, reason, sizeof reason), 503);
    ck_assert_ptr_nonnull(strstr(reason, "fewer than --min-ready 2"));
    all_ready();
    ck_assert_int_eq(status_health(&s, reason, sizeof reason), 200);
    ck_assert_str_eq(reason, "ok: 2/2 workers ready");
    state = ARBITER_STOPPING;
    ck_assert_int_eq(status_health(&s, reason, sizeof reason), 503);
    ck_assert_ptr_nonnull(strstr(reason, "stopping"));
    fixture_stop();
}
END_TEST

START_TEST(test_state_name_says_reloading_while_a_reload_runs) {
    fixture_start(1, 0);
    all_ready();
    struct status_sources s = sources();
    state = ARBITER_RUNNING;
    pool_reload(&fx.pool);
    ck_assert_str_eq(status_state_name(&s), "reloading");
    RUN_UNTIL(successor(1) != NULL, 1000);
    become_ready(successor(1));
    RUN_UNTIL(fx.pool.reload.state == RELOAD_DONE, 1000);
    ck_assert_str_eq(status_state_name(&s), "running");
    fixture_stop();
}
END_TEST

Suite *status_suite(void) {
    Suite *s = suite_create("status");
    TCase *tc = tcase_create("status");
    tcase_add_test(tc, test_census_counts_booting_then_ready);
    tcase_add_test(tc, test_walk_visits_slots_in_id_order_and_empty_slots_only_when_asked);
    tcase_add_test(tc, test_walk_sees_a_successor_then_the_draining_worker);
    tcase_add_test(tc, test_health_follows_min_ready_and_stopping);
    tcase_add_test(tc, test_state_name_says_reloading_while_a_reload_runs);
    suite_add_tcase(s, tc);
    return s;
}
