/* test_log.c - the names --log-level and --log-format accept, and how untrusted bytes are escaped. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "unit.h"

START_TEST(test_log_level_names_parse_to_their_level) {
    const struct {
        const char *name;
        enum log_level level;
    } cases[] = {{"debug", LOG_DEBUG},     {"info", LOG_INFO},   {"warning", LOG_WARNING},
                 {"error", LOG_ERROR},     {"critical", LOG_CRITICAL}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum log_level level = LOG_CRITICAL + 1;
        ck_assert_int_eq(log_level_parse(cases[i].name, &level), 0);
        ck_assert_int_eq(level, cases[i].level);
        ck_assert_str_eq(log_level_name(level), cases[i].name);
    }
}
END_TEST

START_TEST(test_log_level_trace_means_debug) {
    enum log_level level = LOG_INFO;
    ck_assert_int_eq(log_level_parse("trace", &level), 0);
    ck_assert_int_eq(level, LOG_DEBUG);
}
END_TEST

START_TEST(test_log_level_warn_means_warning) {
    enum log_level level = LOG_INFO;
    ck_assert_int_eq(log_level_parse("warn", &level), 0);
    ck_assert_int_eq(level, LOG_WARNING);
}
END_TEST

START_TEST(test_log_level_ignores_case) {
    enum log_level level = LOG_INFO;
    ck_assert_int_eq(log_level_parse("ERROR", &level), 0);
    ck_assert_int_eq(level, LOG_ERROR);
}
END_TEST

START_TEST(test_log_level_unknown_name_is_refused_and_level_kept) {
    enum log_level level = LOG_INFO;
    ck_assert_int_eq(log_level_parse("verbose", &level), -1);
    ck_assert_int_eq(log_level_parse("", &level), -1);
    ck_assert_int_eq(level, LOG_INFO);
}
END_TEST

START_TEST(test_log_format_text_and_json) {
    enum log_format format = LOG_FORMAT_JSON;
    ck_assert_int_eq(log_format_parse("text", &format), 0);
    ck_assert_int_eq(format, LOG_FORMAT_TEXT);
    ck_assert_int_eq(log_format_parse("json", &format), 0);
    ck_assert_int_eq(format, LOG_FORMAT_JSON);
}
END_TEST

START_TEST(test_log_format_unknown_name_is_refused) {
    enum log_format format = LOG_FORMAT_TEXT;
    ck_assert_int_eq(log_format_parse("xml", &format), -1);
    ck_assert_int_eq(log_format_parse("", &format), -1);
    ck_assert_int_eq(format, LOG_FORMAT_TEXT);
}
END_TEST

START_TEST(test_excerpt_keeps_printable_text) {
    char out[32];
    ck_assert_str_eq(log_escape_excerpt(out, sizeof out, "not json {", 10), "not json {");
}
END_TEST

START_TEST(test_excerpt_escapes_newlines_and_control_bytes_as_hex) {
    char out[64];
    ck_assert_str_eq(log_escape_excerpt(out, sizeof out, "a\nb\r\t\x1b[31m", 10), "a\\x0ab\\x0d\\x09\\x1b[31m");
}
END_TEST

START_TEST(test_excerpt_escapes_bytes_above_ascii_and_delete) {
    char out[64];
    ck_assert_str_eq(log_escape_excerpt(out, sizeof out, "\x7f\x80\xff\xc3\xa9", 5), "\\x7f\\x80\\xff\\xc3\\xa9");
}
END_TEST

START_TEST(test_excerpt_doubles_a_backslash_so_escapes_stay_unambiguous) {
    char out[32];
    ck_assert_str_eq(log_escape_excerpt(out, sizeof out, "\\x41", 4), "\\\\x41");
}
END_TEST

START_TEST(test_excerpt_shows_a_nul_byte_and_what_follows_it) {
    char out[32];
    ck_assert_str_eq(log_escape_excerpt(out, sizeof out, "a\0b", 3), "a\\x00b");
}
END_TEST

START_TEST(test_excerpt_reads_exactly_length_bytes_of_an_unterminated_buffer) {
    char *bytes = malloc(3); /* no NUL after the bytes: ASan reports any read past them */
    ck_assert_ptr_nonnull(bytes);
    memcpy(bytes, "xyz", 3);
    char out[32];
    ck_assert_str_eq(log_escape_excerpt(out, sizeof out, bytes, 3), "xyz");
    ck_assert_str_eq(log_escape_excerpt(out, sizeof out, bytes, 2), "xy");
    ck_assert_str_eq(log_escape_excerpt(out, sizeof out, bytes, 0), "");
    free(bytes);
}
END_TEST

START_TEST(test_excerpt_that_does_not_fit_is_cut_with_an_ellipsis) {
    char out[8];
    ck_assert_str_eq(log_escape_excerpt(out, sizeof out, "abcdefghij", 10), "abcd...");
}
END_TEST

START_TEST(test_excerpt_that_fits_exactly_has_no_ellipsis) {
    char out[8];
    ck_assert_str_eq(log_escape_excerpt(out, sizeof out, "abcdefg", 7), "abcdefg");
}
END_TEST

START_TEST(test_excerpt_is_never_cut_inside_an_escape) {
    char out[8];
    ck_assert_str_eq(log_escape_excerpt(out, sizeof out, "ab\n\n\n", 5), "ab...");
    ck_assert_str_eq(log_escape_excerpt(out, sizeof out, "\n\n", 2), "\\x0a...");
}
END_TEST

START_TEST(test_excerpt_into_a_tiny_buffer_is_still_terminated) {
    char out[3] = "zz";
    ck_assert_str_eq(log_escape_excerpt(out, sizeof out, "abcdef", 6), "..");
    char one[1] = {'z'};
    ck_assert_str_eq(log_escape_excerpt(one, sizeof one, "abcdef", 6), "");
}
END_TEST

Suite *log_suite(void) {
    Suite *suite = suite_create("log");
    TCase *tc = tcase_create("names");
    tcase_add_test(tc, test_log_level_names_parse_to_their_level);
    tcase_add_test(tc, test_log_level_trace_means_debug);
    tcase_add_test(tc, test_log_level_warn_means_warning);
    tcase_add_test(tc, test_log_level_ignores_case);
    tcase_add_test(tc, test_log_level_unknown_name_is_refused_and_level_kept);
    tcase_add_test(tc, test_log_format_text_and_json);
    tcase_add_test(tc, test_log_format_unknown_name_is_refused);
    suite_add_tcase(suite, tc);
    TCase *excerpt = tcase_create("excerpt");
    tcase_add_test(excerpt, test_excerpt_keeps_printable_text);
    tcase_add_test(excerpt, test_excerpt_escapes_newlines_and_control_bytes_as_hex);
    tcase_add_test(excerpt, test_excerpt_escapes_bytes_above_ascii_and_delete);
    tcase_add_test(excerpt, test_excerpt_doubles_a_backslash_so_escapes_stay_unambiguous);
    tcase_add_test(excerpt, test_excerpt_shows_a_nul_byte_and_what_follows_it);
    tcase_add_test(excerpt, test_excerpt_reads_exactly_length_bytes_of_an_unterminated_buffer);
    tcase_add_test(excerpt, test_excerpt_that_does_not_fit_is_cut_with_an_ellipsis);
    tcase_add_test(excerpt, test_excerpt_that_fits_exactly_has_no_ellipsis);
    tcase_add_test(excerpt, test_excerpt_is_never_cut_inside_an_escape);
    tcase_add_test(excerpt, test_excerpt_into_a_tiny_buffer_is_still_terminated);
    suite_add_tcase(suite, excerpt);
    return suite;
}
