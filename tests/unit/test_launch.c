/* test_launch.c - the launch recipe: a worker's and the zygote's argv and environment. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "environment.h"
#include "launch.h"
#include "unit.h"

static struct config base_config(void) {
    struct config c;
    memset(&c, 0, sizeof c);
    c.python = "/usr/bin/python3";
    c.app = "app:app";
    c.graceful_timeout = 30;
    c.timeout = 2;
    return c;
}

static bool argv_has(char **argv, const char *word) {
    for (char **p = argv; *p; p++)
        if (strcmp(*p, word) == 0)
            return true;
    return false;
}

static const char *argv_after(char **argv, const char *word) {
    for (char **p = argv; *p; p++)
        if (strcmp(*p, word) == 0)
            return p[1];
    return NULL;
}

START_TEST(test_worker_argv_carries_max_requests_but_the_zygote_does_not) {
    struct config c = base_config();
    c.max_requests = 100;
    struct launch_context ctx = {.config = &c};
    struct launch_numbers numbers;
    char **worker = launch_argv(&ctx, &numbers, false, 123);
    ck_assert_str_eq(argv_after(worker, "--max-requests"), "123");
    ck_assert_str_eq(argv_after(worker, "--graceful-timeout"), "30");
    ck_assert(!argv_has(worker, "--zygote"));
    ck_assert_str_eq(worker[0], "/usr/bin/python3");
    free(worker);
    char **zygote = launch_argv(&ctx, &numbers, true, 123);
    ck_assert(argv_has(zygote, "--zygote"));
    ck_assert(!argv_has(zygote, "--max-requests"));
    free(zygote);
}
END_TEST

START_TEST(test_user_goes_through_exec_worker) {
    struct config c = base_config();
    struct launch_context ctx = {.config = &c, .set_uid = true, .uid = 1000};
    struct launch_numbers numbers;
    char **argv = launch_argv(&ctx, &numbers, false, 0);
    ck_assert_str_eq(argv[0], "/proc/self/exe");
    ck_assert_str_eq(argv[2], "/usr/bin/python3");
    free(argv);
}
END_TEST

START_TEST(test_max_requests_jitter_stays_within_bounds) {
    struct config c = base_config();
    ck_assert_uint_eq(launch_max_requests(&c), 0);
    c.max_requests = 1000;
    ck_assert_uint_eq(launch_max_requests(&c), 1000);
    c.max_requests_jitter = 5;
    for (int i = 0; i < 200; i++) {
        unsigned n = launch_max_requests(&c);
        ck_assert_uint_ge(n, 1000);
        ck_assert_uint_le(n, 1005);
    }
}
END_TEST

START_TEST(test_heartbeat_interval_is_a_bounded_quarter_of_the_timeout) {
    struct config c = base_config();
    ck_assert_double_eq_tol(launch_heartbeat_interval(&c), 0.5, 1e-9);
    c.timeout = 0;
    ck_assert_double_eq_tol(launch_heartbeat_interval(&c), 5.0, 1e-9);
    c.timeout = 0.01;
    ck_assert_double_eq_tol(launch_heartbeat_interval(&c), 0.05, 1e-9);
}
END_TEST

START_TEST(test_env_names_the_worker) {
    struct config c = base_config();
    struct launch_context ctx = {.config = &c};
    char **env = launch_env(&ctx, 3, 7, 2, 4);
    ck_assert_ptr_nonnull(env);
    ck_assert_str_eq(environment_get(env, "ARBITER_WORKER_ID"), "3");
    ck_assert_str_eq(environment_get(env, "ARBITER_GENERATION"), "7");
    ck_assert_str_eq(environment_get(env, "ARBITER_HEARTBEAT_INTERVAL"), "0.500");
    environment_free(env);
}
END_TEST

START_TEST(test_variables_are_the_arbiter_ones_only) {
    struct config c = base_config();
    struct launch_context ctx = {.config = &c, .shim_dir = "/opt/shim"};
    char **vars = launch_variables(&ctx, 3, 7, 2, 4);
    ck_assert_ptr_nonnull(vars);
    for (char **p = vars; *p; p++)
        ck_assert_msg(strncmp(*p, "ARBITER_", 8) == 0, "%s is not an ARBITER_ variable", *p);
    ck_assert_str_eq(environment_get(vars, "ARBITER_WORKER_ID"), "3");
    ck_assert_str_eq(environment_get(vars, "ARBITER_GENERATION"), "7");
    ck_assert_str_eq(environment_get(vars, "ARBITER_LISTEN_FDS"), "2");
    ck_assert_str_eq(environment_get(vars, "ARBITER_BOARD_INDEX"), "4");
    ck_assert_ptr_null(environment_get(vars, "PYTHONPATH"));
    char **env = launch_env(&ctx, 3, 7, 2, 4); /* the same values as an exec'd worker gets */
    for (char **p = vars; *p; p++) {
        size_t name = (size_t)(strchr(*p, '=') - *p);
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)name, *p);
        ck_assert_str_eq(environment_get(env, key), *p + name + 1);
    }
    environment_free(env);
    environment_free(vars);
}
END_TEST

Suite *launch_suite(void) {
    Suite *suite = suite_create("launch");
    TCase *tc = tcase_create("recipe");
    tcase_add_test(tc, test_worker_argv_carries_max_requests_but_the_zygote_does_not);
    tcase_add_test(tc, test_user_goes_through_exec_worker);
    tcase_add_test(tc, test_max_requests_jitter_stays_within_bounds);
    tcase_add_test(tc, test_heartbeat_interval_is_a_bounded_quarter_of_the_timeout);
    tcase_add_test(tc, test_env_names_the_worker);
    tcase_add_test(tc, test_variables_are_the_arbiter_ones_only);
    suite_add_tcase(suite, tc);
    return suite;
}
