/* test_handshake.c - which first channel lines the arbiter accepts from a worker, and what it says
 * about the ones it refuses (docs/worker-channel.md, "The handshake"). */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "handshake.h"
#include "unit.h"
#include "worker.h"

static bool accept_line(const char *line, char *problem, size_t size) {
    json_t *message = json_loads(line, 0, NULL);
    bool accepted = handshake_accept(message, problem, size);
    json_decref(message);
    return accepted;
}

START_TEST(test_hello_of_our_protocol_is_accepted) {
    char problem[768] = "";
    char line[160];
    snprintf(line, sizeof line, "{\"type\":\"hello\",\"protocol\":%d,\"pid\":42,\"shim\":\"0.1.0\",\"uvicorn\":null}",
             ARBITER_CHANNEL_PROTOCOL);
    ck_assert(accept_line(line, problem, sizeof problem));
}
END_TEST

START_TEST(test_hello_of_another_protocol_is_refused_naming_both_versions_and_the_fix) {
    char problem[768] = "";
    ck_assert(!accept_line("{\"type\":\"hello\",\"protocol\":999,\"pid\":42,\"shim\":\"9.9.9\"}", problem, sizeof problem));
    ck_assert_ptr_nonnull(strstr(problem, "arbiter_worker 9.9.9) speaks worker-channel protocol 999"));
    char ours[32];
    snprintf(ours, sizeof ours, "speaks protocol %d", ARBITER_CHANNEL_PROTOCOL);
    ck_assert_ptr_nonnull(strstr(problem, ours));
    ck_assert_ptr_nonnull(strstr(problem, "restart the arbiter"));
    ck_assert_ptr_nonnull(strstr(problem, "reinstall"));
}
END_TEST

START_TEST(test_first_message_other_than_a_hello_is_refused_as_a_shim_older_than_the_handshake) {
    char problem[768] = "";
    ck_assert(!accept_line("{\"type\":\"heartbeat\",\"requests\":0,\"in_flight\":0}", problem, sizeof problem));
    ck_assert_ptr_nonnull(strstr(problem, "'heartbeat', not a hello"));
    ck_assert_ptr_nonnull(strstr(problem, "predates the protocol handshake"));
    ck_assert_ptr_nonnull(strstr(problem, "restart the arbiter"));
}
END_TEST

START_TEST(test_first_line_that_is_not_json_is_refused) {
    char problem[768] = "";
    ck_assert(!handshake_accept(NULL, problem, sizeof problem));
    ck_assert_ptr_nonnull(strstr(problem, "not a JSON object"));
}
END_TEST

START_TEST(test_hello_without_an_integer_protocol_is_refused) {
    char problem[768] = "";
    ck_assert(!accept_line("{\"type\":\"hello\",\"protocol\":\"1\",\"shim\":\"0.1.0\"}", problem, sizeof problem));
    ck_assert_ptr_nonnull(strstr(problem, "without a protocol number"));
}
END_TEST

START_TEST(test_what_the_worker_sent_is_logged_as_printable_text_only) {
    char problem[768] = "";
    ck_assert(!accept_line("{\"type\":\"hello\",\"protocol\":2,\"shim\":\"1\\n2\\u001b[31m\"}", problem, sizeof problem));
    ck_assert_ptr_nonnull(strstr(problem, "arbiter_worker 1?2?[31m)"));
    ck_assert_ptr_null(strchr(problem, '\n'));
}
END_TEST

/* The worker's side: worker_handle_message reads nothing else until the hello is accepted. A
 * worker in WORKER_SPAWNING has no process, so the refusal's SIGKILL is skipped here. */

static void handle(struct worker *w, const char *line) { worker_handle_message(w, line, strlen(line)); }

START_TEST(test_worker_whose_first_message_is_our_hello_is_greeted) {
    struct worker w = {.state = WORKER_SPAWNING};
    char line[160];
    snprintf(line, sizeof line, "{\"type\":\"hello\",\"protocol\":%d,\"pid\":42}", ARBITER_CHANNEL_PROTOCOL);
    handle(&w, line);
    ck_assert(w.greeted);
    ck_assert_int_eq(w.kill_reason, KILL_NONE);
}
END_TEST

START_TEST(test_worker_whose_first_message_is_not_a_hello_is_refused_like_a_bad_interpreter) {
    struct worker w = {.state = WORKER_SPAWNING};
    handle(&w, "{\"type\":\"heartbeat\",\"requests\":0,\"in_flight\":0}");
    ck_assert(!w.greeted);
    ck_assert_int_eq(w.kill_reason, KILL_PROTOCOL_MISMATCH);
    char description[128];
    worker_describe_exit(&w, description, sizeof description);
    ck_assert_ptr_nonnull(strstr(description, "another channel protocol"));
}
END_TEST

START_TEST(test_worker_refused_at_the_handshake_is_not_greeted_by_a_later_hello) {
    struct worker w = {.state = WORKER_SPAWNING};
    handle(&w, "{\"type\":\"hello\",\"protocol\":999,\"pid\":42}");
    char line[160];
    snprintf(line, sizeof line, "{\"type\":\"hello\",\"protocol\":%d,\"pid\":42}", ARBITER_CHANNEL_PROTOCOL);
    handle(&w, line);
    ck_assert(!w.greeted);
    ck_assert_int_eq(w.kill_reason, KILL_PROTOCOL_MISMATCH);
}
END_TEST

Suite *handshake_suite(void) {
    Suite *suite = suite_create("handshake");
    TCase *accept = tcase_create("accept");
    tcase_add_test(accept, test_hello_of_our_protocol_is_accepted);
    tcase_add_test(accept, test_hello_of_another_protocol_is_refused_naming_both_versions_and_the_fix);
    tcase_add_test(accept, test_first_message_other_than_a_hello_is_refused_as_a_shim_older_than_the_handshake);
    tcase_add_test(accept, test_first_line_that_is_not_json_is_refused);
    tcase_add_test(accept, test_hello_without_an_integer_protocol_is_refused);
    tcase_add_test(accept, test_what_the_worker_sent_is_logged_as_printable_text_only);
    suite_add_tcase(suite, accept);
    TCase *worker = tcase_create("worker");
    tcase_add_test(worker, test_worker_whose_first_message_is_our_hello_is_greeted);
    tcase_add_test(worker, test_worker_whose_first_message_is_not_a_hello_is_refused_like_a_bad_interpreter);
    tcase_add_test(worker, test_worker_refused_at_the_handshake_is_not_greeted_by_a_later_hello);
    suite_add_tcase(suite, worker);
    return suite;
}
