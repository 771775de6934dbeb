/* test_environment.c - what a worker finds in its environment. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "environment.h"
#include "handshake.h"
#include "privileges.h"
#include "unit.h"

static struct worker_identity identity(size_t listen_fds) {
    return (struct worker_identity){
        .worker_id = 3,
        .generation = 7,
        .arbiter_pid = 4242,
        .listen_fds = listen_fds,
        .heartbeat_interval = 1.5,
        .log_format = "json",
        .shim_dir = NULL,
    };
}

static size_t count_named(char **env, const char *name) {
    size_t len = strlen(name), count = 0;
    for (char **p = env; *p; p++)
        if (strncmp(*p, name, len) == 0 && (*p)[len] == '=')
            count++;
    return count;
}

START_TEST(test_systemd_variables_are_not_passed_to_workers) {
    char *base[] = {"PATH=/usr/bin", "NOTIFY_SOCKET=/run/systemd/notify", "WATCHDOG_USEC=30000000",
                    "WATCHDOG_PID=1", "LISTEN_PID=1", "LISTEN_FDS=2", "LISTEN_FDNAMES=http:https", NULL};
    struct worker_identity id = identity(1);
    char **env = environment_build(base, NULL, 0, &id);
    ck_assert_ptr_nonnull(env);
    ck_assert_str_eq(environment_get(env, "PATH"), "/usr/bin");
    const char *dropped[] = {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"};
    for (size_t i = 0; i < sizeof dropped / sizeof dropped[0]; i++)
        ck_assert_msg(environment_get(env, dropped[i]) == NULL, "%s reached the worker", dropped[i]);
    environment_free(env);
}
END_TEST

START_TEST(test_stale_arbiter_variables_are_replaced_by_this_workers) {
    char *base[] = {"ARBITER_WORKER_ID=99", "ARBITER_STALE=1", "ARBITER_LISTEN_FDS=9", NULL};
    struct worker_identity id = identity(1);
    char **env = environment_build(base, NULL, 0, &id);
    ck_assert_ptr_nonnull(env);
    ck_assert_ptr_null(environment_get(env, "ARBITER_STALE"));
    ck_assert_str_eq(environment_get(env, "ARBITER_WORKER_ID"), "3");
    ck_assert_uint_eq(count_named(env, "ARBITER_WORKER_ID"), 1);
    ck_assert_str_eq(environment_get(env, "ARBITER_LISTEN_FDS"), "1");
    environment_free(env);
}
END_TEST

START_TEST(test_worker_identity_is_set) {
    char *base[] = {NULL};
    struct worker_identity id = identity(2);
    char **env = environment_build(base, NULL, 0, &id);
    ck_assert_ptr_nonnull(env);
    ck_assert_str_eq(environment_get(env, "ARBITER_LISTEN_FDS"), "2");
    ck_assert_str_eq(environment_get(env, "ARBITER_WORKER_ID"), "3");
    ck_assert_str_eq(environment_get(env, "ARBITER_GENERATION"), "7");
    ck_assert_str_eq(environment_get(env, "ARBITER_PID"), "4242");
    ck_assert_str_eq(environment_get(env, "ARBITER_LOG_FORMAT"), "json");
    ck_assert_str_eq(environment_get(env, "ARBITER_HEARTBEAT_INTERVAL"), "1.500");
    environment_free(env);
}
END_TEST

START_TEST(test_arbiter_protocol_is_this_arbiters_channel_protocol_even_if_stale_or_forged) {
    char *base[] = {"ARBITER_PROTOCOL=999", NULL};
    struct string_list extra = {.items = (char *[]){"ARBITER_PROTOCOL=7"}, .count = 1};
    struct worker_identity id = identity(1);
    char **env = environment_build(base, extra.items, extra.count, &id);
    ck_assert_ptr_nonnull(env);
    char expected[16];
    snprintf(expected, sizeof expected, "%d", ARBITER_CHANNEL_PROTOCOL);
    ck_assert_str_eq(environment_get(env, "ARBITER_PROTOCOL"), expected);
    ck_assert_uint_eq(count_named(env, "ARBITER_PROTOCOL"), 1);
    environment_free(env);
}
END_TEST

START_TEST(test_channel_fd_follows_the_listen_fds) {
    char *base[] = {NULL};
    for (size_t listen_fds = 0; listen_fds < 4; listen_fds++) {
        struct worker_identity id = identity(listen_fds);
        char **env = environment_build(base, NULL, 0, &id);
        ck_assert_ptr_nonnull(env);
        ck_assert_int_eq(atoi(environment_get(env, "ARBITER_CHANNEL_FD")), 3 + (int)listen_fds);
        environment_free(env);
    }
}
END_TEST

START_TEST(test_env_entries_override_the_arbiters_own) {
    char *base[] = {"DATABASE_URL=postgres://old", "HOME=/root", NULL};
    char *extra_items[] = {"DATABASE_URL=postgres://new", "FEATURE=on", NULL};
    struct string_list extra = {.items = extra_items, .count = 2, .capacity = 3};
    struct worker_identity id = identity(1);
    char **env = environment_build(base, extra.items, extra.count, &id);
    ck_assert_ptr_nonnull(env);
    ck_assert_str_eq(environment_get(env, "DATABASE_URL"), "postgres://new");
    ck_assert_uint_eq(count_named(env, "DATABASE_URL"), 1);
    ck_assert_str_eq(environment_get(env, "FEATURE"), "on");
    ck_assert_str_eq(environment_get(env, "HOME"), "/root");
    environment_free(env);
}
END_TEST

START_TEST(test_later_env_entry_wins) {
    char *base[] = {NULL};
    char *extra_items[] = {"MODE=a", "MODE=b", NULL};
    struct string_list extra = {.items = extra_items, .count = 2, .capacity = 3};
    struct worker_identity id = identity(1);
    char **env = environment_build(base, extra.items, extra.count, &id);
    ck_assert_ptr_nonnull(env);
    ck_assert_str_eq(environment_get(env, "MODE"), "b");
    ck_assert_uint_eq(count_named(env, "MODE"), 1);
    environment_free(env);
}
END_TEST

START_TEST(test_env_entries_cannot_forge_the_worker_identity) {
    char *base[] = {NULL};
    char *extra_items[] = {"ARBITER_WORKER_ID=1", "NOTIFY_SOCKET=/tmp/x", NULL};
    struct string_list extra = {.items = extra_items, .count = 2, .capacity = 3};
    struct worker_identity id = identity(1);
    char **env = environment_build(base, extra.items, extra.count, &id);
    ck_assert_ptr_nonnull(env);
    ck_assert_str_eq(environment_get(env, "ARBITER_WORKER_ID"), "3");
    ck_assert_ptr_null(environment_get(env, "NOTIFY_SOCKET"));
    environment_free(env);
}
END_TEST

START_TEST(test_shim_dir_is_prepended_to_an_existing_pythonpath) {
    char *base[] = {"PYTHONPATH=/srv/app/lib", NULL};
    struct worker_identity id = identity(1);
    id.shim_dir = "/usr/share/arbiter/python";
    char **env = environment_build(base, NULL, 0, &id);
    ck_assert_ptr_nonnull(env);
    ck_assert_str_eq(environment_get(env, "PYTHONPATH"), "/usr/share/arbiter/python:/srv/app/lib");
    ck_assert_uint_eq(count_named(env, "PYTHONPATH"), 1);
    environment_free(env);
}
END_TEST

START_TEST(test_shim_dir_is_prepended_to_a_pythonpath_from_env) {
    char *base[] = {"PYTHONPATH=/old", NULL};
    char *extra_items[] = {"PYTHONPATH=/from/env", NULL};
    struct string_list extra = {.items = extra_items, .count = 1, .capacity = 2};
    struct worker_identity id = identity(1);
    id.shim_dir = "/shim";
    char **env = environment_build(base, extra.items, extra.count, &id);
    ck_assert_ptr_nonnull(env);
    ck_assert_str_eq(environment_get(env, "PYTHONPATH"), "/shim:/from/env");
    environment_free(env);
}
END_TEST

START_TEST(test_shim_dir_alone_when_pythonpath_is_unset_or_empty) {
    char *unset[] = {NULL};
    char *empty[] = {"PYTHONPATH=", NULL};
    char *const *bases[] = {unset, empty};
    for (size_t i = 0; i < 2; i++) {
        struct worker_identity id = identity(1);
        id.shim_dir = "/shim";
        char **env = environment_build(bases[i], NULL, 0, &id);
        ck_assert_ptr_nonnull(env);
        ck_assert_str_eq(environment_get(env, "PYTHONPATH"), "/shim");
        environment_free(env);
    }
}
END_TEST

START_TEST(test_pythonpath_untouched_without_shim_dir) {
    char *base[] = {"PYTHONPATH=/srv/app/lib", NULL};
    struct worker_identity id = identity(1);
    char **env = environment_build(base, NULL, 0, &id);
    ck_assert_ptr_nonnull(env);
    ck_assert_str_eq(environment_get(env, "PYTHONPATH"), "/srv/app/lib");
    environment_free(env);
}
END_TEST

START_TEST(test_pythonunbuffered_is_added_when_unset) {
    char *base[] = {NULL};
    struct worker_identity id = identity(1);
    char **env = environment_build(base, NULL, 0, &id);
    ck_assert_ptr_nonnull(env);
    ck_assert_str_eq(environment_get(env, "PYTHONUNBUFFERED"), "1");
    environment_free(env);
}
END_TEST

START_TEST(test_pythonunbuffered_set_by_the_user_is_kept) {
    char *base[] = {"PYTHONUNBUFFERED=", NULL};
    struct worker_identity id = identity(1);
    char **env = environment_build(base, NULL, 0, &id);
    ck_assert_ptr_nonnull(env);
    ck_assert_str_eq(environment_get(env, "PYTHONUNBUFFERED"), "");
    ck_assert_uint_eq(count_named(env, "PYTHONUNBUFFERED"), 1);
    environment_free(env);
}
END_TEST

START_TEST(test_environment_is_null_terminated_without_a_base) {
    struct worker_identity id = identity(0);
    char **env = environment_build(NULL, NULL, 0, &id);
    ck_assert_ptr_nonnull(env);
    size_t count = 0;
    while (env[count])
        count++;
    ck_assert_uint_ge(count, 8);
    environment_free(env);
}
END_TEST

START_TEST(test_environment_get_matches_whole_names_only) {
    char *env[] = {"PATHX=/x", "PATH=/usr/bin", NULL};
    ck_assert_str_eq(environment_get(env, "PATH"), "/usr/bin");
    ck_assert_ptr_null(environment_get(env, "PAT"));
}
END_TEST

/* execve() accepts entries without '='; the value must not be read from past the string's end. */
START_TEST(test_environment_get_ignores_entries_without_a_value) {
    char *env[] = {"PYTHONPATH", NULL};
    ck_assert_ptr_null(environment_get(env, "PYTHONPATH"));
}
END_TEST

START_TEST(test_entry_without_equals_does_not_become_the_pythonpath) {
    char *base[] = {"PYTHONPATH", "PYTHONUNBUFFERED", NULL};
    struct worker_identity id = identity(1);
    id.shim_dir = "/shim";
    char **env = environment_build(base, NULL, 0, &id);
    ck_assert_ptr_nonnull(env);
    ck_assert_str_eq(environment_get(env, "PYTHONPATH"), "/shim");
    ck_assert_str_eq(environment_get(env, "PYTHONUNBUFFERED"), "1");
    environment_free(env);
}
END_TEST

/* ---- --user/--group: what `arbiter exec-worker` reads ---- */

START_TEST(test_user_and_group_reach_the_worker_as_arbiter_variables) {
    char *base[] = {"PATH=/usr/bin", "ARBITER_UID=0", NULL};
    char *forged_list[] = {"ARBITER_GID=0", NULL};
    struct string_list forged = {.items = forged_list, .count = 1};
    struct worker_identity id = identity(1);
    id.set_uid = id.set_gid = true;
    id.uid = 999;
    id.gid = 998;
    id.user = "app";
    char **env = environment_build(base, forged.items, forged.count, &id);
    ck_assert_ptr_nonnull(env);
    ck_assert_str_eq(environment_get(env, "ARBITER_UID"), "999");
    ck_assert_str_eq(environment_get(env, "ARBITER_GID"), "998");
    ck_assert_str_eq(environment_get(env, "ARBITER_USER"), "app");
    struct privileges p;
    char err[256] = "";
    ck_assert_msg(privileges_parse(env, &p, err, sizeof err) == 0, "%s", err);
    ck_assert(p.set_uid && p.set_gid);
    ck_assert_uint_eq(p.uid, 999);
    ck_assert_uint_eq(p.gid, 998);
    ck_assert_str_eq(p.user, "app");
    environment_free(env);
}
END_TEST

START_TEST(test_without_user_or_group_no_identity_variable_is_set) {
    char *base[] = {"PATH=/usr/bin", "ARBITER_UID=0", "ARBITER_USER=root", NULL};
    struct worker_identity id = identity(1);
    char **env = environment_build(base, NULL, 0, &id);
    ck_assert_ptr_null(environment_get(env, "ARBITER_UID"));
    ck_assert_ptr_null(environment_get(env, "ARBITER_GID"));
    ck_assert_ptr_null(environment_get(env, "ARBITER_USER"));
    environment_free(env);
}
END_TEST

START_TEST(test_group_alone_names_no_user) {
    char *env[] = {"ARBITER_GID=33", NULL};
    struct privileges p;
    char err[256] = "";
    ck_assert_msg(privileges_parse(env, &p, err, sizeof err) == 0, "%s", err);
    ck_assert(!p.set_uid && p.set_gid);
    ck_assert_uint_eq(p.gid, 33);
    ck_assert_ptr_null(p.user);
}
END_TEST

START_TEST(test_malformed_identity_variables_are_refused_naming_them) {
    static char *cases[][3] = {
        {"ARBITER_UID=app", "ARBITER_GID=1", NULL}, {"ARBITER_UID=1", "ARBITER_GID=-1", NULL},
        {"ARBITER_UID=1", "ARBITER_GID=4294967295", NULL}, {"ARBITER_UID=1", NULL, NULL},
        {"ARBITER_USER=app", "ARBITER_GID=1", NULL},
    };
    static const char *const expected[] = {"ARBITER_UID='app'", "ARBITER_GID='-1'", "ARBITER_GID='4294967295'",
                                           "ARBITER_GID is not set", "ARBITER_USER=app comes without ARBITER_UID"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct privileges p;
        char err[256] = "";
        ck_assert_int_eq(privileges_parse(cases[i], &p, err, sizeof err), -1);
        ck_assert_msg(strstr(err, expected[i]) != NULL, "case %zu: '%s' lacks '%s'", i, err, expected[i]);
    }
}
END_TEST

Suite *environment_suite(void) {
    Suite *suite = suite_create("environment");
    TCase *tc = tcase_create("build");
    tcase_add_test(tc, test_systemd_variables_are_not_passed_to_workers);
    tcase_add_test(tc, test_stale_arbiter_variables_are_replaced_by_this_workers);
    tcase_add_test(tc, test_worker_identity_is_set);
    tcase_add_test(tc, test_arbiter_protocol_is_this_arbiters_channel_protocol_even_if_stale_or_forged);
    tcase_add_test(tc, test_channel_fd_follows_the_listen_fds);
    tcase_add_test(tc, test_env_entries_override_the_arbiters_own);
    tcase_add_test(tc, test_later_env_entry_wins);
    tcase_add_test(tc, test_env_entries_cannot_forge_the_worker_identity);
    tcase_add_test(tc, test_shim_dir_is_prepended_to_an_existing_pythonpath);
    tcase_add_test(tc, test_shim_dir_is_prepended_to_a_pythonpath_from_env);
    tcase_add_test(tc, test_shim_dir_alone_when_pythonpath_is_unset_or_empty);
    tcase_add_test(tc, test_pythonpath_untouched_without_shim_dir);
    tcase_add_test(tc, test_pythonunbuffered_is_added_when_unset);
    tcase_add_test(tc, test_pythonunbuffered_set_by_the_user_is_kept);
    tcase_add_test(tc, test_environment_is_null_terminated_without_a_base);
    suite_add_tcase(suite, tc);
    TCase *get = tcase_create("get");
    tcase_add_test(get, test_environment_get_matches_whole_names_only);
    tcase_add_test(get, test_environment_get_ignores_entries_without_a_value);
    tcase_add_test(get, test_entry_without_equals_does_not_become_the_pythonpath);
    TCase *privileges = tcase_create("privileges");
    tcase_add_test(privileges, test_user_and_group_reach_the_worker_as_arbiter_variables);
    tcase_add_test(privileges, test_without_user_or_group_no_identity_variable_is_set);
    tcase_add_test(privileges, test_group_alone_names_no_user);
    tcase_add_test(privileges, test_malformed_identity_variables_are_refused_naming_them);
    suite_add_tcase(suite, privileges);
    suite_add_tcase(suite, get);
    return suite;
}
