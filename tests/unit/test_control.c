/* test_control.c - the control protocol as control.h documents it: request parsing and validation,
 * the command table, permission decisions, error replies, the default socket path, and the PSS
 * parser that status uses for memory. */
#define _GNU_SOURCE
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "control.h"
#include "procstat.h"
#include "unit.h"

/* Parses a NUL-terminated request; returns what control_parse_request returned. */
static int parse(const char *line, struct control_request *request, struct control_error *error) {
    memset(error, 0, sizeof *error);
    return control_parse_request(line, strlen(line), request, error);
}

/* Asserts that line is refused with code, and returns the message for further checks. */
static const char *refused_with(const char *line, const char *code) {
    static struct control_error error;
    struct control_request request;
    int rc = parse(line, &request, &error);
    ck_assert_msg(rc == -1, "expected %s to be refused with %s, it was accepted", line, code);
    ck_assert_msg(error.code != NULL, "no error code for %s", line);
    ck_assert_msg(strcmp(error.code, code) == 0, "%s: expected code %s, got %s (%s)", line, code, error.code,
                  error.message);
    ck_assert_msg(error.message[0] != '\0', "%s: the %s error has no message", line, code);
    return error.message;
}

/* Asserts that line is accepted as command name, and returns the request. */
static struct control_request accepted_as(const char *line, const char *name) {
    struct control_request request;
    struct control_error error;
    int rc = parse(line, &request, &error);
    ck_assert_msg(rc == 0, "expected %s to be accepted, got %s: %s", line, error.code ? error.code : "?", error.message);
    ck_assert_ptr_nonnull(request.command);
    ck_assert_str_eq(request.command->name, name);
    return request;
}

/* ---- every command ---- */

START_TEST(test_status_is_accepted_and_needs_only_read_permission) {
    struct control_request request = accepted_as("{\"cmd\":\"status\"}", "status");
    ck_assert_int_eq(request.command->permission, CONTROL_READ);
}
END_TEST

START_TEST(test_scale_with_workers_is_absolute) {
    struct control_request request = accepted_as("{\"cmd\":\"scale\",\"workers\":8}", "scale");
    ck_assert(request.has_workers);
    ck_assert(!request.has_delta);
    ck_assert_int_eq(request.workers, 8);
    ck_assert_int_eq(request.command->permission, CONTROL_WRITE);
}
END_TEST

START_TEST(test_scale_with_positive_delta_is_relative) {
    struct control_request request = accepted_as("{\"cmd\":\"scale\",\"delta\":2}", "scale");
    ck_assert(request.has_delta);
    ck_assert(!request.has_workers);
    ck_assert_int_eq(request.delta, 2);
}
END_TEST

/* Whether -5 workers is too many to remove depends on the current count, so the parser lets it
 * through and the command decides (out_of_range) when it runs. */
START_TEST(test_scale_with_negative_delta_is_left_to_the_command_to_range_check) {
    struct control_request request = accepted_as("{\"cmd\":\"scale\",\"delta\":-5}", "scale");
    ck_assert(request.has_delta);
    ck_assert_int_eq(request.delta, -5);
}
END_TEST

START_TEST(test_reload_is_accepted_and_needs_write_permission) {
    struct control_request request = accepted_as("{\"cmd\":\"reload\"}", "reload");
    ck_assert_int_eq(request.command->permission, CONTROL_WRITE);
}
END_TEST

START_TEST(test_recycle_takes_the_worker_id) {
    struct control_request request = accepted_as("{\"cmd\":\"recycle\",\"id\":3}", "recycle");
    ck_assert_int_eq(request.id, 3);
    ck_assert_int_eq(request.command->permission, CONTROL_WRITE);
}
END_TEST

START_TEST(test_stop_is_graceful_by_default) {
    struct control_request request = accepted_as("{\"cmd\":\"stop\"}", "stop");
    ck_assert(!request.quick);
    ck_assert_int_eq(request.command->permission, CONTROL_WRITE);
}
END_TEST

START_TEST(test_stop_quick_true_is_quick) {
    struct control_request request = accepted_as("{\"cmd\":\"stop\",\"quick\":true}", "stop");
    ck_assert(request.quick);
}
END_TEST

START_TEST(test_health_is_readiness_by_default_and_needs_only_read_permission) {
    struct control_request request = accepted_as("{\"cmd\":\"health\"}", "health");
    ck_assert(!request.live && !request.all);
    ck_assert_int_eq(request.command->permission, CONTROL_READ);
}
END_TEST

START_TEST(test_health_live_and_health_all_are_kept) {
    ck_assert(accepted_as("{\"cmd\":\"health\",\"live\":true}", "health").live);
    ck_assert(accepted_as("{\"cmd\":\"health\",\"all\":true}", "health").all);
}
END_TEST

START_TEST(test_command_names_list_every_command_in_table_order) {
    ck_assert_str_eq(control_command_names(), "status|scale|reload|recycle|stop|upgrade|health|autoscale");
}
END_TEST

/* ---- defaults and common fields ---- */

START_TEST(test_wait_defaults_to_true_and_timeout_to_120_seconds) {
    struct control_request request = accepted_as("{\"cmd\":\"reload\"}", "reload");
    ck_assert(request.wait);
    ck_assert_double_eq(request.timeout, 120.0);
    ck_assert_double_eq(request.timeout, CONTROL_DEFAULT_TIMEOUT_S);
}
END_TEST

START_TEST(test_wait_false_and_a_fractional_timeout_are_kept) {
    struct control_request request = accepted_as("{\"cmd\":\"scale\",\"workers\":2,\"wait\":false,\"timeout\":2.5}", "scale");
    ck_assert(!request.wait);
    ck_assert_double_eq(request.timeout, 2.5);
}
END_TEST

START_TEST(test_integer_timeout_is_accepted) {
    struct control_request request = accepted_as("{\"cmd\":\"reload\",\"timeout\":30}", "reload");
    ck_assert_double_eq(request.timeout, 30.0);
}
END_TEST

START_TEST(test_timeout_of_one_day_is_the_largest_accepted) {
    struct control_request request = accepted_as("{\"cmd\":\"reload\",\"timeout\":86400}", "reload");
    ck_assert_double_eq(request.timeout, 86400.0);
    refused_with("{\"cmd\":\"reload\",\"timeout\":86400.5}", "bad_request");
}
END_TEST

START_TEST(test_fields_of_other_commands_are_ignored) {
    struct control_request request = accepted_as("{\"cmd\":\"status\",\"workers\":\"x\",\"extra\":[1]}", "status");
    ck_assert(!request.has_workers);
}
END_TEST

START_TEST(test_only_the_given_length_is_parsed) {
    const char *buffer = "{\"cmd\":\"status\"}GARBAGE AFTER THE LINE";
    struct control_request request;
    struct control_error error = {0};
    ck_assert_int_eq(control_parse_request(buffer, strlen("{\"cmd\":\"status\"}"), &request, &error), 0);
    ck_assert_str_eq(request.command->name, "status");
}
END_TEST

START_TEST(test_a_failed_parse_after_a_good_one_leaves_no_command_behind) {
    struct control_request request;
    struct control_error error;
    ck_assert_int_eq(parse("{\"cmd\":\"stop\",\"quick\":true}", &request, &error), 0);
    ck_assert_int_eq(parse("nonsense", &request, &error), -1);
    ck_assert_ptr_null(request.command);
    ck_assert(!request.quick);
}
END_TEST

/* ---- bad_json ---- */

START_TEST(test_text_that_is_not_json_is_bad_json) {
    const char *message = refused_with("status please", "bad_json");
    ck_assert_msg(strstr(message, "{\"cmd\":\"status\"}") != NULL, "the message shows an example: %s", message);
}
END_TEST

START_TEST(test_truncated_object_is_bad_json) { refused_with("{\"cmd\":\"status\"", "bad_json"); }
END_TEST

START_TEST(test_empty_line_is_bad_json) { refused_with("", "bad_json"); }
END_TEST

START_TEST(test_two_objects_on_one_line_are_bad_json) { refused_with("{\"cmd\":\"status\"}{\"cmd\":\"stop\"}", "bad_json"); }
END_TEST

START_TEST(test_duplicate_keys_are_bad_json) {
    /* Which "workers" would win is exactly the kind of ambiguity a control command must not have. */
    refused_with("{\"cmd\":\"scale\",\"workers\":2,\"workers\":200}", "bad_json");
}
END_TEST

START_TEST(test_embedded_nul_is_bad_json) {
    const char line[] = "{\"cmd\":\"st\0atus\"}";
    struct control_request request;
    struct control_error error = {0};
    ck_assert_int_eq(control_parse_request(line, sizeof line - 1, &request, &error), -1);
    ck_assert_ptr_nonnull(error.code);
    ck_assert_str_eq(error.code, "bad_json");
}
END_TEST

/* ---- bad_request ---- */

START_TEST(test_array_is_bad_request) { refused_with("[\"status\"]", "bad_request"); }
END_TEST

START_TEST(test_json_scalar_is_bad_request) {
    refused_with("\"status\"", "bad_request");
    refused_with("42", "bad_request");
    refused_with("null", "bad_request");
}
END_TEST

START_TEST(test_object_without_cmd_is_bad_request) { refused_with("{\"workers\":4}", "bad_request"); }
END_TEST

START_TEST(test_cmd_that_is_not_a_string_is_bad_request) {
    refused_with("{\"cmd\":5}", "bad_request");
    refused_with("{\"cmd\":null}", "bad_request");
    refused_with("{\"cmd\":[\"status\"]}", "bad_request");
}
END_TEST

START_TEST(test_wait_that_is_not_a_boolean_is_bad_request) {
    refused_with("{\"cmd\":\"reload\",\"wait\":\"yes\"}", "bad_request");
    refused_with("{\"cmd\":\"reload\",\"wait\":1}", "bad_request");
}
END_TEST

START_TEST(test_timeout_that_is_not_a_number_is_bad_request) {
    refused_with("{\"cmd\":\"reload\",\"timeout\":\"10\"}", "bad_request");
    refused_with("{\"cmd\":\"reload\",\"timeout\":null}", "bad_request");
}
END_TEST

START_TEST(test_zero_timeout_is_bad_request) { refused_with("{\"cmd\":\"reload\",\"timeout\":0}", "bad_request"); }
END_TEST

START_TEST(test_negative_timeout_is_bad_request) { refused_with("{\"cmd\":\"reload\",\"timeout\":-1}", "bad_request"); }
END_TEST

START_TEST(test_timeout_over_one_day_is_bad_request) {
    const char *message = refused_with("{\"cmd\":\"reload\",\"timeout\":86401}", "bad_request");
    ck_assert_msg(strstr(message, "86400") != NULL, "the message gives the range: %s", message);
}
END_TEST

START_TEST(test_scale_workers_that_is_not_an_integer_is_bad_request) {
    refused_with("{\"cmd\":\"scale\",\"workers\":\"8\"}", "bad_request");
    refused_with("{\"cmd\":\"scale\",\"workers\":8.5}", "bad_request");
}
END_TEST

START_TEST(test_scale_delta_that_is_not_an_integer_is_bad_request) {
    refused_with("{\"cmd\":\"scale\",\"delta\":\"+1\"}", "bad_request");
    refused_with("{\"cmd\":\"scale\",\"delta\":1.5}", "bad_request");
}
END_TEST

START_TEST(test_recycle_id_that_is_not_an_integer_is_bad_request) {
    refused_with("{\"cmd\":\"recycle\",\"id\":\"1\"}", "bad_request");
}
END_TEST

START_TEST(test_stop_quick_that_is_not_a_boolean_is_bad_request) {
    refused_with("{\"cmd\":\"stop\",\"quick\":\"yes\"}", "bad_request");
}
END_TEST

START_TEST(test_health_live_that_is_not_a_boolean_is_bad_request) {
    refused_with("{\"cmd\":\"health\",\"live\":1}", "bad_request");
}
END_TEST

START_TEST(test_health_live_and_all_together_is_invalid_argument) {
    refused_with("{\"cmd\":\"health\",\"live\":true,\"all\":true}", "invalid_argument");
}
END_TEST

/* ---- unknown_command ---- */

START_TEST(test_unknown_command_names_it_and_lists_the_valid_ones) {
    const char *message = refused_with("{\"cmd\":\"restart\"}", "unknown_command");
    ck_assert_msg(strstr(message, "'restart'") != NULL, "the message names the command: %s", message);
    ck_assert_msg(strstr(message, "status|scale|reload|recycle|stop|upgrade|health|autoscale") != NULL, "the message lists the commands: %s",
                  message);
}
END_TEST

START_TEST(test_command_names_are_case_sensitive) { refused_with("{\"cmd\":\"STATUS\"}", "unknown_command"); }
END_TEST

START_TEST(test_prefix_of_a_command_is_unknown) { refused_with("{\"cmd\":\"stat\"}", "unknown_command"); }
END_TEST

START_TEST(test_very_long_unknown_command_is_cut_in_the_message) {
    char line[4200];
    char name[4000];
    memset(name, 'x', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    snprintf(line, sizeof line, "{\"cmd\":\"%s\"}", name);
    const char *message = refused_with(line, "unknown_command");
    ck_assert_uint_lt(strlen(message), sizeof ((struct control_error *)0)->message);
    ck_assert_msg(strstr(message, "status|scale|reload|recycle|stop|upgrade|health|autoscale") != NULL,
                  "the valid commands still fit after a long name: %s", message);
}
END_TEST

START_TEST(test_unknown_command_cut_inside_a_utf8_character_still_has_a_reply) {
    char line[200];
    char name[100];
    memset(name, 'x', 63);
    strcpy(name + 63, "\xc3\xa9tat"); /* byte 64 is the first of the two bytes of an e-acute */
    snprintf(line, sizeof line, "{\"cmd\":\"%s\"}", name);
    struct control_error error = {0};
    struct control_request request;
    ck_assert_int_eq(parse(line, &request, &error), -1);
    json_t *reply = control_error_reply(&error);
    ck_assert_msg(reply != NULL, "no reply could be built for: %s", error.message);
    json_decref(reply);
}
END_TEST

START_TEST(test_bad_json_with_bytes_that_are_not_utf8_still_has_a_reply) {
    /* found by fuzz_control: jansson quotes the bytes near the error in its message */
    const char line[] = "{\"cmd\":\"recycl\\\xd6\x82";
    struct control_error error = {0};
    struct control_request request;
    ck_assert_int_eq(control_parse_request(line, sizeof line - 1, &request, &error), -1);
    ck_assert_str_eq(error.code, "bad_json");
    ck_assert_msg(strstr(error.message, "\\xd6") != NULL, "the byte is shown escaped: %s", error.message);
    json_t *reply = control_error_reply(&error);
    ck_assert_msg(reply != NULL, "no reply could be built for: %s", error.message);
    json_decref(reply);
}
END_TEST

/* ---- invalid_argument and out_of_range ---- */

START_TEST(test_scale_with_both_workers_and_delta_is_invalid_argument) {
    refused_with("{\"cmd\":\"scale\",\"workers\":4,\"delta\":1}", "invalid_argument");
}
END_TEST

START_TEST(test_scale_with_neither_workers_nor_delta_is_invalid_argument) {
    refused_with("{\"cmd\":\"scale\"}", "invalid_argument");
}
END_TEST

START_TEST(test_scale_to_zero_workers_is_out_of_range) {
    const char *message = refused_with("{\"cmd\":\"scale\",\"workers\":0}", "out_of_range");
    ck_assert_msg(strstr(message, "stop") != NULL, "the message points at stop: %s", message);
}
END_TEST

START_TEST(test_scale_to_negative_workers_is_out_of_range) {
    refused_with("{\"cmd\":\"scale\",\"workers\":-3}", "out_of_range");
}
END_TEST

START_TEST(test_scale_to_one_worker_is_the_smallest_accepted) {
    struct control_request request = accepted_as("{\"cmd\":\"scale\",\"workers\":1}", "scale");
    ck_assert_int_eq(request.workers, 1);
}
END_TEST

START_TEST(test_scale_to_more_than_1024_workers_is_out_of_range_naming_the_range) {
    const char *message = refused_with("{\"cmd\":\"scale\",\"workers\":1025}", "out_of_range");
    ck_assert_msg(strstr(message, "from 1 to 1024") != NULL, "%s", message);
    accepted_as("{\"cmd\":\"scale\",\"workers\":1024}", "scale");
}
END_TEST

/* The largest delta used to be added to the target as it came, overflowing into a negative count. */
START_TEST(test_scale_delta_beyond_1024_is_out_of_range_without_a_wrapped_value) {
    const char *lines[] = {"{\"cmd\":\"scale\",\"delta\":9223372036854775807}",
                           "{\"cmd\":\"scale\",\"delta\":-9223372036854775808}", "{\"cmd\":\"scale\",\"delta\":1025}",
                           "{\"cmd\":\"scale\",\"delta\":-1025}"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        const char *message = refused_with(lines[i], "out_of_range");
        ck_assert_msg(strstr(message, "\"delta\" must be from -1024 to +1024") != NULL, "%s: %s", lines[i], message);
        ck_assert_msg(strstr(message, "922337") == NULL, "%s: the message shows a wrapped value: %s", lines[i], message);
    }
    ck_assert_int_eq(accepted_as("{\"cmd\":\"scale\",\"delta\":1024}", "scale").delta, 1024);
    ck_assert_int_eq(accepted_as("{\"cmd\":\"scale\",\"delta\":-1024}", "scale").delta, -1024);
}
END_TEST

START_TEST(test_recycle_id_outside_1_to_1024_is_out_of_range) {
    const char *lines[] = {"{\"cmd\":\"recycle\",\"id\":0}", "{\"cmd\":\"recycle\",\"id\":-1}",
                           "{\"cmd\":\"recycle\",\"id\":1025}", "{\"cmd\":\"recycle\",\"id\":9223372036854775807}"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        const char *message = refused_with(lines[i], "out_of_range");
        ck_assert_msg(strstr(message, "\"id\" must be from 1 to 1024") != NULL, "%s: %s", lines[i], message);
    }
    ck_assert_int_eq(accepted_as("{\"cmd\":\"recycle\",\"id\":1024}", "recycle").id, 1024);
}
END_TEST

START_TEST(test_timeout_out_of_range_names_the_range) {
    const char *message = refused_with("{\"cmd\":\"reload\",\"timeout\":1e300}", "bad_request");
    ck_assert_msg(strstr(message, "above 0 and at most 86400") != NULL, "%s", message);
}
END_TEST

START_TEST(test_recycle_without_id_is_invalid_argument) {
    const char *message = refused_with("{\"cmd\":\"recycle\"}", "invalid_argument");
    ck_assert_msg(strstr(message, "status") != NULL, "the message says where ids come from: %s", message);
}
END_TEST

/* ---- permissions ---- */

enum { OWN_UID = 1000, OTHER_UID = 1001, READ_GROUP = 50 };

START_TEST(test_root_may_run_every_command) {
    ck_assert(control_permitted(CONTROL_WRITE, 0, NULL, 0, OWN_UID, false, 0));
    ck_assert(control_permitted(CONTROL_READ, 0, NULL, 0, OWN_UID, false, 0));
}
END_TEST

START_TEST(test_the_arbiters_own_uid_may_run_every_command) {
    gid_t groups[] = {OWN_UID};
    ck_assert(control_permitted(CONTROL_WRITE, OWN_UID, groups, 1, OWN_UID, false, 0));
    ck_assert(control_permitted(CONTROL_READ, OWN_UID, groups, 1, OWN_UID, false, 0));
    ck_assert(control_permitted(CONTROL_WRITE, OWN_UID, groups, 1, OWN_UID, true, READ_GROUP));
}
END_TEST

START_TEST(test_another_uid_is_refused_even_status) {
    gid_t groups[] = {OTHER_UID};
    ck_assert(!control_permitted(CONTROL_READ, OTHER_UID, groups, 1, OWN_UID, false, 0));
    ck_assert(!control_permitted(CONTROL_WRITE, OTHER_UID, groups, 1, OWN_UID, false, 0));
}
END_TEST

START_TEST(test_a_member_of_the_control_group_may_read) {
    gid_t groups[] = {OTHER_UID, 27, READ_GROUP};
    ck_assert(control_permitted(CONTROL_READ, OTHER_UID, groups, 3, OWN_UID, true, READ_GROUP));
}
END_TEST

START_TEST(test_the_control_group_as_primary_group_may_read) {
    gid_t groups[] = {READ_GROUP};
    ck_assert(control_permitted(CONTROL_READ, OTHER_UID, groups, 1, OWN_UID, true, READ_GROUP));
}
END_TEST

START_TEST(test_a_member_of_the_control_group_may_not_write) {
    gid_t groups[] = {OTHER_UID, READ_GROUP};
    ck_assert(!control_permitted(CONTROL_WRITE, OTHER_UID, groups, 2, OWN_UID, true, READ_GROUP));
}
END_TEST

START_TEST(test_a_non_member_is_refused_read_when_a_group_is_configured) {
    gid_t groups[] = {OTHER_UID, 27};
    ck_assert(!control_permitted(CONTROL_READ, OTHER_UID, groups, 2, OWN_UID, true, READ_GROUP));
}
END_TEST

/* read_group is only meaningful with has_read_group: gid 0 in the peer's groups must not match an
 * unset read_group of 0. */
START_TEST(test_without_a_control_group_no_group_grants_read) {
    gid_t groups[] = {0, READ_GROUP};
    ck_assert(!control_permitted(CONTROL_READ, OTHER_UID, groups, 2, OWN_UID, false, 0));
    ck_assert(!control_permitted(CONTROL_READ, OTHER_UID, groups, 2, OWN_UID, false, READ_GROUP));
}
END_TEST

START_TEST(test_a_peer_with_no_groups_is_refused_read) {
    ck_assert(!control_permitted(CONTROL_READ, OTHER_UID, NULL, 0, OWN_UID, true, READ_GROUP));
}
END_TEST

/* ---- error replies ---- */

START_TEST(test_error_reply_has_ok_false_and_an_error_with_code_and_message) {
    struct control_error error = {.code = "busy"};
    snprintf(error.message, sizeof error.message, "too many control clients at once; try again");
    json_t *reply = control_error_reply(&error);
    ck_assert_ptr_nonnull(reply);
    ck_assert_uint_eq(json_object_size(reply), 2);
    ck_assert(json_is_false(json_object_get(reply, "ok")));
    json_t *inner = json_object_get(reply, "error");
    ck_assert(json_is_object(inner));
    ck_assert_uint_eq(json_object_size(inner), 2);
    ck_assert_str_eq(json_string_value(json_object_get(inner, "code")), "busy");
    ck_assert_str_eq(json_string_value(json_object_get(inner, "message")), "too many control clients at once; try again");
    json_decref(reply);
}
END_TEST

START_TEST(test_error_reply_is_one_line_even_with_quotes_and_newlines_in_the_message) {
    struct control_error error = {.code = "failed"};
    snprintf(error.message, sizeof error.message, "a \"quoted\"\nsecond line\tand a tab");
    json_t *reply = control_error_reply(&error);
    char *text = json_dumps(reply, JSON_COMPACT);
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_null(strchr(text, '\n'));
    json_error_t json_error;
    json_t *back = json_loads(text, 0, &json_error);
    ck_assert_ptr_nonnull(back);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(back, "error"), "message")), error.message);
    json_decref(back);
    free(text);
    json_decref(reply);
}
END_TEST

/* What the parser produces is what the server sends: every parse error makes a valid reply. */
START_TEST(test_every_parse_error_makes_a_well_formed_reply) {
    const char *lines[] = {"x", "[]", "{\"cmd\":\"nope\"}", "{\"cmd\":\"scale\"}", "{\"cmd\":\"scale\",\"workers\":0}"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        struct control_request request;
        struct control_error error;
        ck_assert_int_eq(parse(lines[i], &request, &error), -1);
        json_t *reply = control_error_reply(&error);
        ck_assert_msg(reply != NULL, "no reply for %s", lines[i]);
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(reply, "error"), "code")), error.code);
        json_decref(reply);
    }
}
END_TEST

/* ---- default socket path ---- (check forks each test, so setenv stays inside it) */

START_TEST(test_default_path_is_arbiter_control_when_set) {
    setenv("ARBITER_CONTROL", "/tmp/x/control.sock", 1);
    setenv("RUNTIME_DIRECTORY", "/run/app", 1);
    char path[108], err[512];
    ck_assert_int_eq(control_default_path("web", path, sizeof path, err, sizeof err), 0);
    ck_assert_str_eq(path, "/tmp/x/control.sock");
}
END_TEST

START_TEST(test_default_path_uses_the_first_runtime_directory) {
    unsetenv("ARBITER_CONTROL");
    setenv("RUNTIME_DIRECTORY", "/run/app:/run/other", 1);
    char path[108], err[512];
    ck_assert_int_eq(control_default_path("web", path, sizeof path, err, sizeof err), 0);
    ck_assert_str_eq(path, "/run/app/web.sock");
}
END_TEST

START_TEST(test_default_path_that_does_not_fit_is_empty) {
    char long_dir[200];
    memset(long_dir, 'd', sizeof long_dir - 1);
    long_dir[0] = '/';
    long_dir[sizeof long_dir - 1] = '\0';
    unsetenv("ARBITER_CONTROL");
    setenv("RUNTIME_DIRECTORY", long_dir, 1);
    char path[108], err[512];
    ck_assert_int_eq(control_default_path("web", path, sizeof path, err, sizeof err), -1);
    ck_assert_str_eq(path, "");
    ck_assert_ptr_nonnull(strstr(err, "too long"));
}
END_TEST

/* /tmp/arbiter-UID may have been made by someone else first (/tmp is world-writable). */
START_TEST(test_private_dir_of_our_own_with_mode_700_is_accepted) {
    char dir[256], err[512] = "";
    scratch_dir_create(dir, sizeof dir);
    ck_assert_int_eq(chmod(dir, 0700), 0);
    ck_assert_msg(control_check_private_dir(dir, geteuid(), err, sizeof err) == 0, "%s", err);
    scratch_dir_remove(dir);
}
END_TEST

START_TEST(test_private_dir_writable_by_others_is_refused) {
    char dir[256], err[512] = "";
    scratch_dir_create(dir, sizeof dir);
    const mode_t modes[] = {0777, 0770, 0702};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        ck_assert_int_eq(chmod(dir, modes[i]), 0);
        ck_assert_int_eq(control_check_private_dir(dir, geteuid(), err, sizeof err), -1);
        ck_assert_msg(strstr(err, "writable by others") != NULL && strstr(err, "--control") != NULL, "%s", err);
    }
    scratch_dir_remove(dir);
}
END_TEST

START_TEST(test_private_dir_owned_by_another_uid_is_refused) {
    char dir[256], err[512] = "";
    scratch_dir_create(dir, sizeof dir);
    ck_assert_int_eq(chmod(dir, 0700), 0);
    ck_assert_int_eq(control_check_private_dir(dir, geteuid() + 1, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "not to this user") != NULL, "%s", err);
    scratch_dir_remove(dir);
}
END_TEST

START_TEST(test_private_dir_that_is_a_symlink_is_refused) {
    char dir[256], link_path[300], err[512] = "";
    scratch_dir_create(dir, sizeof dir);
    snprintf(link_path, sizeof link_path, "%s/link", dir);
    ck_assert_int_eq(symlink(dir, link_path), 0);
    ck_assert_int_eq(control_check_private_dir(link_path, geteuid(), err, sizeof err), -1);
    ck_assert_msg(strstr(err, "not a directory") != NULL, "%s", err);
    scratch_dir_remove(dir);
}
END_TEST

/* ---- PSS from smaps_rollup ---- */

static const char SMAPS_ROLLUP[] =
    "55d0c0a00000-7ffd5a1f2000 ---p 00000000 00:00 0                          [rollup]\n"
    "Rss:               45312 kB\n"
    "Pss:               30123 kB\n"
    "Pss_Dirty:         20000 kB\n"
    "Pss_Anon:          19876 kB\n"
    "Pss_File:          10247 kB\n"
    "Pss_Shmem:             0 kB\n"
    "Shared_Clean:      15000 kB\n"
    "Swap:                  0 kB\n"
    "SwapPss:               0 kB\n";

START_TEST(test_pss_is_read_from_smaps_rollup_in_bytes) {
    uint64_t bytes = 0;
    ck_assert_int_eq(procstat_parse_pss(SMAPS_ROLLUP, &bytes), 0);
    ck_assert_uint_eq(bytes, 30123ull * 1024);
}
END_TEST

START_TEST(test_pss_on_the_first_line_is_found) {
    uint64_t bytes = 0;
    ck_assert_int_eq(procstat_parse_pss("Pss: 12 kB\nRss: 40 kB\n", &bytes), 0);
    ck_assert_uint_eq(bytes, 12ull * 1024);
}
END_TEST

START_TEST(test_pss_breakdown_lines_are_not_taken_for_pss) {
    uint64_t bytes = 7;
    ck_assert_int_eq(procstat_parse_pss("Rss: 1 kB\nPss_Anon: 5 kB\nSwapPss: 9 kB\nPss_File: 3 kB\n", &bytes), -1);
    ck_assert_uint_eq(bytes, 7);
}
END_TEST

START_TEST(test_pss_after_its_breakdown_lines_is_still_found) {
    uint64_t bytes = 0;
    ck_assert_int_eq(procstat_parse_pss("Rss: 1 kB\nPss_Anon: 5 kB\nPss: 6 kB\n", &bytes), 0);
    ck_assert_uint_eq(bytes, 6ull * 1024);
}
END_TEST

START_TEST(test_pss_absent_is_an_error) {
    uint64_t bytes = 0;
    ck_assert_int_eq(procstat_parse_pss("", &bytes), -1);
    ck_assert_int_eq(procstat_parse_pss("Rss: 100 kB\n", &bytes), -1);
}
END_TEST

START_TEST(test_pss_without_a_number_is_an_error) {
    uint64_t bytes = 0;
    ck_assert_int_eq(procstat_parse_pss("Rss: 1 kB\nPss: lots kB\n", &bytes), -1);
    ck_assert_int_eq(procstat_parse_pss("Rss: 1 kB\nPss:", &bytes), -1);
}
END_TEST

START_TEST(test_large_pss_does_not_overflow) {
    uint64_t bytes = 0;
    ck_assert_int_eq(procstat_parse_pss("Pss: 68719476736 kB\n", &bytes), 0); /* 64 TiB */
    ck_assert_uint_eq(bytes, 68719476736ull * 1024);
}
END_TEST

START_TEST(test_procstat_reads_a_live_process) {
    struct proc_stats stats;
    ck_assert_int_eq(procstat_read(getpid(), &stats), 0);
    ck_assert_uint_gt(stats.rss_bytes, 0);
    ck_assert(stats.cpu_seconds >= 0.0);
}
END_TEST

START_TEST(test_procstat_of_a_reaped_process_is_an_error) {
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0)
        _exit(0);
    int status;
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    struct proc_stats stats;
    ck_assert_int_eq(procstat_read(child, &stats), -1);
}
END_TEST

START_TEST(test_eviction_picks_the_client_idle_the_longest) {
    struct control_client_summary clients[] = {{true, 500}, {true, 100}, {true, 900}};
    ck_assert_int_eq(control_choose_eviction(clients, 3), 1);
}
END_TEST

START_TEST(test_eviction_never_picks_a_client_whose_command_is_under_way) {
    struct control_client_summary clients[] = {{false, 10}, {true, 700}, {false, 20}};
    ck_assert_int_eq(control_choose_eviction(clients, 3), 1);
}
END_TEST

START_TEST(test_eviction_finds_nobody_when_every_client_waits) {
    struct control_client_summary clients[] = {{false, 10}, {false, 20}};
    ck_assert_int_eq(control_choose_eviction(clients, 2), -1);
    ck_assert_int_eq(control_choose_eviction(clients, 0), -1);
}
END_TEST

Suite *control_suite(void) {
    Suite *suite = suite_create("control");
    TCase *commands = tcase_create("commands");
    tcase_add_test(commands, test_status_is_accepted_and_needs_only_read_permission);
    tcase_add_test(commands, test_scale_with_workers_is_absolute);
    tcase_add_test(commands, test_scale_with_positive_delta_is_relative);
    tcase_add_test(commands, test_scale_with_negative_delta_is_left_to_the_command_to_range_check);
    tcase_add_test(commands, test_reload_is_accepted_and_needs_write_permission);
    tcase_add_test(commands, test_recycle_takes_the_worker_id);
    tcase_add_test(commands, test_stop_is_graceful_by_default);
    tcase_add_test(commands, test_stop_quick_true_is_quick);
    tcase_add_test(commands, test_health_is_readiness_by_default_and_needs_only_read_permission);
    tcase_add_test(commands, test_health_live_and_health_all_are_kept);
    tcase_add_test(commands, test_command_names_list_every_command_in_table_order);
    suite_add_tcase(suite, commands);

    TCase *eviction = tcase_create("eviction");
    tcase_add_test(eviction, test_eviction_picks_the_client_idle_the_longest);
    tcase_add_test(eviction, test_eviction_never_picks_a_client_whose_command_is_under_way);
    tcase_add_test(eviction, test_eviction_finds_nobody_when_every_client_waits);
    suite_add_tcase(suite, eviction);

    TCase *defaults = tcase_create("defaults");
    tcase_add_test(defaults, test_wait_defaults_to_true_and_timeout_to_120_seconds);
    tcase_add_test(defaults, test_wait_false_and_a_fractional_timeout_are_kept);
    tcase_add_test(defaults, test_integer_timeout_is_accepted);
    tcase_add_test(defaults, test_timeout_of_one_day_is_the_largest_accepted);
    tcase_add_test(defaults, test_fields_of_other_commands_are_ignored);
    tcase_add_test(defaults, test_only_the_given_length_is_parsed);
    tcase_add_test(defaults, test_a_failed_parse_after_a_good_one_leaves_no_command_behind);
    suite_add_tcase(suite, defaults);

    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, test_text_that_is_not_json_is_bad_json);
    tcase_add_test(errors, test_truncated_object_is_bad_json);
    tcase_add_test(errors, test_empty_line_is_bad_json);
    tcase_add_test(errors, test_two_objects_on_one_line_are_bad_json);
    tcase_add_test(errors, test_duplicate_keys_are_bad_json);
    tcase_add_test(errors, test_embedded_nul_is_bad_json);
    tcase_add_test(errors, test_array_is_bad_request);
    tcase_add_test(errors, test_json_scalar_is_bad_request);
    tcase_add_test(errors, test_object_without_cmd_is_bad_request);
    tcase_add_test(errors, test_cmd_that_is_not_a_string_is_bad_request);
    tcase_add_test(errors, test_wait_that_is_not_a_boolean_is_bad_request);
    tcase_add_test(errors, test_timeout_that_is_not_a_number_is_bad_request);
    tcase_add_test(errors, test_zero_timeout_is_bad_request);
    tcase_add_test(errors, test_negative_timeout_is_bad_request);
    tcase_add_test(errors, test_timeout_over_one_day_is_bad_request);
    tcase_add_test(errors, test_scale_workers_that_is_not_an_integer_is_bad_request);
    tcase_add_test(errors, test_scale_delta_that_is_not_an_integer_is_bad_request);
    tcase_add_test(errors, test_recycle_id_that_is_not_an_integer_is_bad_request);
    tcase_add_test(errors, test_stop_quick_that_is_not_a_boolean_is_bad_request);
    tcase_add_test(errors, test_health_live_that_is_not_a_boolean_is_bad_request);
    tcase_add_test(errors, test_health_live_and_all_together_is_invalid_argument);
    tcase_add_test(errors, test_unknown_command_names_it_and_lists_the_valid_ones);
    tcase_add_test(errors, test_command_names_are_case_sensitive);
    tcase_add_test(errors, test_prefix_of_a_command_is_unknown);
    tcase_add_test(errors, test_very_long_unknown_command_is_cut_in_the_message);
    tcase_add_test(errors, test_unknown_command_cut_inside_a_utf8_character_still_has_a_reply);
    tcase_add_test(errors, test_bad_json_with_bytes_that_are_not_utf8_still_has_a_reply);
    tcase_add_test(errors, test_scale_with_both_workers_and_delta_is_invalid_argument);
    tcase_add_test(errors, test_scale_with_neither_workers_nor_delta_is_invalid_argument);
    tcase_add_test(errors, test_scale_to_zero_workers_is_out_of_range);
    tcase_add_test(errors, test_scale_to_negative_workers_is_out_of_range);
    tcase_add_test(errors, test_scale_to_one_worker_is_the_smallest_accepted);
    tcase_add_test(errors, test_recycle_without_id_is_invalid_argument);
    tcase_add_test(errors, test_scale_to_more_than_1024_workers_is_out_of_range_naming_the_range);
    tcase_add_test(errors, test_scale_delta_beyond_1024_is_out_of_range_without_a_wrapped_value);
    tcase_add_test(errors, test_recycle_id_outside_1_to_1024_is_out_of_range);
    tcase_add_test(errors, test_timeout_out_of_range_names_the_range);
    suite_add_tcase(suite, errors);

    TCase *permissions = tcase_create("permissions");
    tcase_add_test(permissions, test_root_may_run_every_command);
    tcase_add_test(permissions, test_the_arbiters_own_uid_may_run_every_command);
    tcase_add_test(permissions, test_another_uid_is_refused_even_status);
    tcase_add_test(permissions, test_a_member_of_the_control_group_may_read);
    tcase_add_test(permissions, test_the_control_group_as_primary_group_may_read);
    tcase_add_test(permissions, test_a_member_of_the_control_group_may_not_write);
    tcase_add_test(permissions, test_a_non_member_is_refused_read_when_a_group_is_configured);
    tcase_add_test(permissions, test_without_a_control_group_no_group_grants_read);
    tcase_add_test(permissions, test_a_peer_with_no_groups_is_refused_read);
    suite_add_tcase(suite, permissions);

    TCase *replies = tcase_create("replies");
    tcase_add_test(replies, test_error_reply_has_ok_false_and_an_error_with_code_and_message);
    tcase_add_test(replies, test_error_reply_is_one_line_even_with_quotes_and_newlines_in_the_message);
    tcase_add_test(replies, test_every_parse_error_makes_a_well_formed_reply);
    suite_add_tcase(suite, replies);

    TCase *paths = tcase_create("default_path");
    tcase_add_test(paths, test_default_path_is_arbiter_control_when_set);
    tcase_add_test(paths, test_default_path_uses_the_first_runtime_directory);
    tcase_add_test(paths, test_default_path_that_does_not_fit_is_empty);
    tcase_add_test(paths, test_private_dir_of_our_own_with_mode_700_is_accepted);
    tcase_add_test(paths, test_private_dir_writable_by_others_is_refused);
    tcase_add_test(paths, test_private_dir_owned_by_another_uid_is_refused);
    tcase_add_test(paths, test_private_dir_that_is_a_symlink_is_refused);
    suite_add_tcase(suite, paths);

    TCase *procstat = tcase_create("procstat");
    tcase_add_test(procstat, test_pss_is_read_from_smaps_rollup_in_bytes);
    tcase_add_test(procstat, test_pss_on_the_first_line_is_found);
    tcase_add_test(procstat, test_pss_breakdown_lines_are_not_taken_for_pss);
    tcase_add_test(procstat, test_pss_after_its_breakdown_lines_is_still_found);
    tcase_add_test(procstat, test_pss_absent_is_an_error);
    tcase_add_test(procstat, test_pss_without_a_number_is_an_error);
    tcase_add_test(procstat, test_large_pss_does_not_overflow);
    tcase_add_test(procstat, test_procstat_reads_a_live_process);
    tcase_add_test(procstat, test_procstat_of_a_reaped_process_is_an_error);
    suite_add_tcase(suite, procstat);
    return suite;
}
