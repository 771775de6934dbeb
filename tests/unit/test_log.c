/* test_log.c - the names --log-level and --log-format accept. */
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
    return suite;
}
