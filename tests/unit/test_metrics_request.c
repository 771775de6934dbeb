/* test_metrics_request.c - how the metrics listener reads a request: which route each request
 * takes, and when it decides (only once the headers end, or at once for what cannot be HTTP). */
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "unit.h"

/* Parses text from an exact-size heap copy (no NUL after it), with the server's buffer size. */
static struct metrics_request parse(const char *text) {
    size_t length = strlen(text);
    char *bytes = malloc(length ? length : 1);
    ck_assert_ptr_nonnull(bytes);
    memcpy(bytes, text, length);
    struct metrics_request request = metrics_request_parse(bytes, length, METRICS_REQUEST_MAX);
    free(bytes);
    return request;
}

START_TEST(test_get_metrics_routes_to_the_metrics_page) {
    struct metrics_request request = parse("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(request.route, METRICS_ROUTE_METRICS);
    ck_assert(!request.head_only);
}
END_TEST

START_TEST(test_head_healthz_routes_to_health_without_a_body) {
    struct metrics_request request = parse("HEAD /healthz HTTP/1.0\n\n");
    ck_assert_int_eq(request.route, METRICS_ROUTE_HEALTHZ);
    ck_assert(request.head_only);
}
END_TEST

START_TEST(test_a_query_string_is_ignored) {
    ck_assert_int_eq(parse("GET /metrics?name[]=x HTTP/1.1\r\n\r\n").route, METRICS_ROUTE_METRICS);
}
END_TEST

START_TEST(test_another_path_is_not_found) {
    ck_assert_int_eq(parse("GET /metricsx HTTP/1.1\r\n\r\n").route, METRICS_ROUTE_NOT_FOUND);
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\n\r\n").route, METRICS_ROUTE_NOT_FOUND);
}
END_TEST

START_TEST(test_a_method_other_than_get_or_head_is_refused) {
    ck_assert_int_eq(parse("POST /metrics HTTP/1.1\r\n\r\n").route, METRICS_ROUTE_BAD_METHOD);
}
END_TEST

START_TEST(test_request_is_undecided_until_the_headers_end) {
    ck_assert_int_eq(parse("").route, METRICS_ROUTE_INCOMPLETE);
    ck_assert_int_eq(parse("GET /metrics HTTP/1.1\r\n").route, METRICS_ROUTE_INCOMPLETE);
    ck_assert_int_eq(parse("GET /metrics HTTP/1.1\r\nHost: x\r\n").route, METRICS_ROUTE_INCOMPLETE);
}
END_TEST

START_TEST(test_a_first_byte_that_cannot_start_a_method_is_refused_at_once) {
    ck_assert_int_eq(parse("\x16\x03\x01").route, METRICS_ROUTE_NOT_HTTP);
    ck_assert_int_eq(parse("get").route, METRICS_ROUTE_NOT_HTTP);
}
END_TEST

START_TEST(test_a_full_buffer_without_the_end_of_headers_is_too_large) {
    char *bytes = malloc(METRICS_REQUEST_MAX);
    ck_assert_ptr_nonnull(bytes);
    memset(bytes, 'A', METRICS_REQUEST_MAX);
    ck_assert_int_eq(metrics_request_parse(bytes, METRICS_REQUEST_MAX - 1, METRICS_REQUEST_MAX).route,
                     METRICS_ROUTE_INCOMPLETE);
    ck_assert_int_eq(metrics_request_parse(bytes, METRICS_REQUEST_MAX, METRICS_REQUEST_MAX).route,
                     METRICS_ROUTE_TOO_LARGE);
    free(bytes);
}
END_TEST

START_TEST(test_malformed_request_lines_are_bad_requests) {
    const char *cases[] = {
        "GET /metrics\r\n\r\n",           /* no version */
        "GET /metrics HTTP/2.0\r\n\r\n",  /* not HTTP/1.x */
        "GET /metrics HTTP/1.1x\r\n\r\n", /* trailing bytes after the version */
        "GET metrics HTTP/1.1\r\n\r\n",   /* not an origin-form path */
        "GET  /metrics HTTP/1.1\r\n\r\n", /* two spaces */
        "GeT /metrics HTTP/1.1\r\n\r\n",  /* method not upper case */
        "GETTINGVERYLONGMETHOD / HTTP/1.1\r\n\r\n",
        "\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_msg(parse(cases[i]).route == METRICS_ROUTE_BAD_REQUEST, "accepted: %s", cases[i]);
}
END_TEST

START_TEST(test_a_path_of_256_bytes_or_more_is_a_bad_request) {
    char text[400] = "GET /";
    memset(text + 5, 'p', 255);
    strcpy(text + 260, " HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(parse(text).route, METRICS_ROUTE_BAD_REQUEST);
    strcpy(text + 259, " HTTP/1.1\r\n\r\n"); /* 255 bytes: fits */
    ck_assert_int_eq(parse(text).route, METRICS_ROUTE_NOT_FOUND);
}
END_TEST

Suite *metrics_request_suite(void) {
    Suite *suite = suite_create("metrics_request");
    TCase *tc = tcase_create("routes");
    tcase_add_test(tc, test_get_metrics_routes_to_the_metrics_page);
    tcase_add_test(tc, test_head_healthz_routes_to_health_without_a_body);
    tcase_add_test(tc, test_a_query_string_is_ignored);
    tcase_add_test(tc, test_another_path_is_not_found);
    tcase_add_test(tc, test_a_method_other_than_get_or_head_is_refused);
    tcase_add_test(tc, test_request_is_undecided_until_the_headers_end);
    tcase_add_test(tc, test_a_first_byte_that_cannot_start_a_method_is_refused_at_once);
    tcase_add_test(tc, test_a_full_buffer_without_the_end_of_headers_is_too_large);
    tcase_add_test(tc, test_malformed_request_lines_are_bad_requests);
    tcase_add_test(tc, test_a_path_of_256_bytes_or_more_is_a_bad_request);
    suite_add_tcase(suite, tc);
    return suite;
}
