/* test_config.c - `arbiter run|check` flags, environment defaults and --config files.
 *
 * Every test passes its own environment, so the machine's WEB_CONCURRENCY or VIRTUAL_ENV never
 * changes a result, and names an interpreter that exists (/usr/bin/python3) unless the test is
 * about choosing the interpreter. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "migrate.h"
#include "unit.h"

#define PYTHON "/usr/bin/python3"

static char *plain_env[] = {"PATH=/usr/bin:/bin", NULL};

static struct config config;
static char err[CONFIG_ERROR_MAX];
static char scratch[256];

static void setup(void) {
    memset(&config, 0, sizeof config);
    err[0] = '\0';
    scratch_dir_create(scratch, sizeof scratch);
}

static void teardown(void) {
    config_free(&config);
    scratch_dir_remove(scratch);
}

/* parse(envp, "run", "-w", "2", ..., NULL): argv[0] is the subcommand. */
#define ARGS(...) ((char *[]){__VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)))
#define PARSE_ENV(envp, ...) config_parse(&config, ARGC(__VA_ARGS__), ARGS(__VA_ARGS__), envp, err, sizeof err)
#define PARSE(...) PARSE_ENV(plain_env, __VA_ARGS__)

#define ASSERT_OK(call) ck_assert_msg((call) == CONFIG_OK, "expected CONFIG_OK, got error: %s", err)
#define ASSERT_USAGE_ERROR(call, expected)                                                                  \
    do {                                                                                                    \
        ck_assert_msg((call) == CONFIG_USAGE_ERROR, "expected CONFIG_USAGE_ERROR (%s)", expected);         \
        ck_assert_msg(strstr(err, expected) != NULL, "message '%s' lacks '%s'", err, expected);             \
    } while (0)

/* Runs one parse expected to fail and frees it, so one test can try several bad values. */
#define ASSERT_REFUSED(expected, ...)                                                                       \
    do {                                                                                                    \
        ASSERT_USAGE_ERROR(PARSE(__VA_ARGS__), expected);                                                   \
        config_free(&config);                                                                               \
    } while (0)

static char *write_scratch(const char *name, const char *text) {
    static char path[512];
    scratch_file_write(scratch, name, text, path, sizeof path);
    return path;
}

static unsigned bind_port(size_t i) {
    const struct bind_address *b = &config.binds[i];
    if (b->addr.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&b->addr)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&b->addr)->sin6_port);
}

/* ---- numbers ---- */

START_TEST(test_workers_flag_sets_the_worker_count) {
    ASSERT_OK(PARSE("run", "--python", PYTHON, "-w", "4", "app:app"));
    ck_assert_uint_eq(config.workers, 4);
}
END_TEST

START_TEST(test_workers_long_flag_with_equals) {
    ASSERT_OK(PARSE("run", "--python", PYTHON, "--workers=3", "app:app"));
    ck_assert_uint_eq(config.workers, 3);
}
END_TEST

START_TEST(test_workers_out_of_range_is_refused) {
    ASSERT_REFUSED("--workers: '0' is not a whole number from 1 to 1024", "run", "-w", "0", "app:app");
    ASSERT_REFUSED("--workers: '1025'", "run", "-w", "1025", "app:app");
}
END_TEST

START_TEST(test_workers_not_a_number_is_refused) {
    ASSERT_REFUSED("--workers: 'four'", "run", "-w", "four", "app:app");
    ASSERT_REFUSED("--workers: '4x'", "run", "-w", "4x", "app:app");
    ASSERT_REFUSED("--workers: '-1'", "run", "-w", "-1", "app:app");
    ASSERT_REFUSED("--workers: ' 4'", "run", "-w", " 4", "app:app");
}
END_TEST

START_TEST(test_backlog_accepts_up_to_65535) {
    ASSERT_OK(PARSE("run", "--python", PYTHON, "--backlog", "65535", "app:app"));
    ck_assert_uint_eq(config.backlog, 65535);
    /* Forwarded too: uvicorn listens again with its own backlog under --balance kernel. */
    ck_assert_uint_eq(config.forward.count, 2);
    ck_assert_str_eq(config.forward.items[0], "--backlog");
    ck_assert_str_eq(config.forward.items[1], "65535");
    config_free(&config);
    ASSERT_REFUSED("--backlog: '65536'", "run", "--backlog", "65536", "app:app");
}
END_TEST

START_TEST(test_max_requests_with_jitter) {
    ASSERT_OK(PARSE("run", "--python", PYTHON, "--max-requests", "1000", "--max-requests-jitter", "50", "app:app"));
    ck_assert_uint_eq(config.max_requests, 1000);
    ck_assert_uint_eq(config.max_requests_jitter, 50);
}
END_TEST

START_TEST(test_min_ready_sets_the_healthz_threshold) {
    ASSERT_OK(PARSE("run", "--python", PYTHON, "--min-ready", "2", "app:app"));
    ck_assert_uint_eq(config.min_ready, 2);
    config_free(&config);
    ASSERT_REFUSED("--min-ready: '0'", "run", "--min-ready", "0", "app:app");
}
END_TEST

START_TEST(test_socket_mode_is_octal) {
    ASSERT_OK(PARSE("run", "--python", PYTHON, "--socket-mode", "600", "app:app"));
    ck_assert_uint_eq(config.socket_mode, 0600);
    config_free(&config);
    ASSERT_REFUSED("--socket-mode: '999'", "run", "--socket-mode", "999", "app:app");
    ASSERT_REFUSED("--socket-mode: '1777'", "run", "--socket-mode", "1777", "app:app");
}
END_TEST

/* Every numeric flag, with the ends of its range and one step beyond each. The fixed flags in front
 * keep the cross-checks (workers <= max-workers, min-ready <= max-workers, jitter needs max-requests)
 * out of the way; a row's own flag comes later on the command line and wins. */
static const struct {
    char *flag, *lowest, *highest, *below, *above;
    const char *range;
} numeric_flags[] = {
    {"--workers", "1", "1024", "0", "1025", "from 1 to 1024"},
    {"--max-workers", "1", "1024", "0", "1025", "from 1 to 1024"},
    {"--backlog", "1", "65535", "0", "65536", "from 1 to 65535"},
    {"--socket-mode", "0", "777", "-1", "1000", "from 0 to 777"},
    {"--timeout", "0", "86400", "-1", "86401", "from 0 to 86400 seconds"},
    {"--boot-timeout", "0", "86400", "-1", "86401", "from 0 to 86400 seconds"},
    {"--graceful-timeout", "0", "86400", "-1", "86401", "from 0 to 86400 seconds"},
    {"--lame-duck", "0", "3600", "-1", "3601", "from 0 to 3600 seconds"},
    {"--max-requests", "1", "1000000000", "-1", "1000000001", "from 0 to 1000000000"},
    {"--max-requests-jitter", "0", "1000000000", "-1", "1000000001", "from 0 to 1000000000"},
    {"--max-lifetime", "0", "31536000", "-1", "31536001", "from 0 to 31536000 seconds"},
    {"--max-memory", "0", "16T", "-1", "17T", "from 0 to 16T"},
    {"--min-ready", "1", "1024", "0", "1025", "from 1 to 1024"},
    {"--timeout-keep-alive", "0", "86400", "-1", "86401", "from 0 to 86400"},
    {"--limit-concurrency", "1", "1000000", "0", "1000001", "from 1 to 1000000"},
};

#define PARSE_NUMBER(flag, value)                                                                            \
    PARSE("run", "--python", PYTHON, "-w", "1", "--max-workers", "1024", "--max-requests", "1", flag, value, "app:app")

START_TEST(test_every_numeric_flag_accepts_both_ends_of_its_range) {
    for (size_t i = 0; i < sizeof numeric_flags / sizeof numeric_flags[0]; i++) {
        ck_assert_msg(PARSE_NUMBER(numeric_flags[i].flag, numeric_flags[i].lowest) == CONFIG_OK, "%s %s: %s",
                      numeric_flags[i].flag, numeric_flags[i].lowest, err);
        config_free(&config);
        ck_assert_msg(PARSE_NUMBER(numeric_flags[i].flag, numeric_flags[i].highest) == CONFIG_OK, "%s %s: %s",
                      numeric_flags[i].flag, numeric_flags[i].highest, err);
        config_free(&config);
    }
}
END_TEST

START_TEST(test_every_numeric_flag_outside_its_range_is_refused_naming_the_flag_and_the_range) {
    for (size_t i = 0; i < sizeof numeric_flags / sizeof numeric_flags[0]; i++) {
        char *values[] = {numeric_flags[i].below, numeric_flags[i].above};
        for (size_t v = 0; v < 2; v++) {
            char expected[128];
            snprintf(expected, sizeof expected, "%s: '%s'", numeric_flags[i].flag, values[v]);
            ASSERT_USAGE_ERROR(PARSE_NUMBER(numeric_flags[i].flag, values[v]), expected);
            ck_assert_msg(strstr(err, numeric_flags[i].range) != NULL, "%s %s: message '%s' lacks the range '%s'",
                          numeric_flags[i].flag, values[v], err, numeric_flags[i].range);
            config_free(&config);
        }
    }
}
END_TEST

/* 4294967295 + 1 wrapped to 0 in the jitter's modulo (SIGFPE) before the range existed. */
START_TEST(test_max_requests_jitter_of_uint_max_is_refused) {
    ASSERT_REFUSED("--max-requests-jitter: '4294967295' is not a whole number from 0 to 1000000000", "run", "--python",
                   PYTHON, "--max-requests", "100", "--max-requests-jitter", "4294967295", "app:app");
    char *path = write_scratch("jitter.json", "{\"max-requests\": 100, \"max-requests-jitter\": 4294967295}");
    ASSERT_REFUSED("jitter.json: 'max-requests-jitter': '4294967295'", "run", "--python", PYTHON, "--config", path,
                   "app:app");
}
END_TEST

START_TEST(test_largest_max_requests_plus_largest_jitter_fits_an_unsigned) {
    ASSERT_OK(PARSE("run", "--python", PYTHON, "--max-requests", "1000000000", "--max-requests-jitter", "1000000000",
                    "app:app"));
    ck_assert_uint_le((unsigned long long)config.max_requests + config.max_requests_jitter + 1, UINT_MAX);
    ck_assert_uint_eq(config.max_requests + config.max_requests_jitter, 2000000000u); /* unsigned: no wrap */
}
END_TEST

START_TEST(test_lame_duck_is_also_a_config_file_key) {
    char *path = write_scratch("lame.json", "{\"lame-duck\": 2.5}");
    ASSERT_OK(PARSE("run", "--python", PYTHON, "--config", path, "app:app"));
    ck_assert_double_eq_tol(config.lame_duck, 2.5, 1e-9);
}
END_TEST

START_TEST(test_min_ready_above_max_workers_is_refused) {
    ASSERT_REFUSED("--min-ready 200 is more than --max-workers 128", "run", "--python", PYTHON, "-w", "1",
                   "--min-ready", "200", "app:app");
}
END_TEST

/* ---- durations ---- */

START_TEST(test_durations_accept_seconds_and_units) {
    ASSERT_OK(PARSE("run", "--python", PYTHON, "--timeout", "2.5", "--boot-timeout", "500ms", "--graceful-timeout",
                    "2m", "--max-lifetime", "1h", "app:app"));
    ck_assert_double_eq_tol(config.timeout, 2.5, 1e-9);
    ck_assert_double_eq_tol(config.boot_timeout, 0.5, 1e-9);
    ck_assert_double_eq_tol(config.graceful_timeout, 120, 1e-9);
    ck_assert_double_eq_tol(config.max_lifetime, 3600, 1e-9);
}
END_TEST

START_TEST(test_duration_zero_means_never) {
    ASSERT_OK(PARSE("run", "--python", PYTHON, "-t", "0", "app:app"));
    ck_assert_double_eq(config.timeout, 0);
}
END_TEST

START_TEST(test_duration_out_of_range_is_refused) {
    ASSERT_REFUSED("--timeout: '86401' is not a duration from 0 to 86400 seconds", "run", "--timeout", "86401",
                   "app:app");
    ASSERT_REFUSED("--timeout: '-1'", "run", "--timeout", "-1", "app:app");
}
END_TEST

START_TEST(test_duration_with_unknown_unit_is_refused) {
    ASSERT_REFUSED("--boot-timeout: '5x'", "run", "--boot-timeout", "5x", "app:app");
    ASSERT_REFUSED("--boot-timeout: 'soon'", "run", "--boot-timeout", "soon", "app:app");
    ASSERT_REFUSED("--boot-timeout: 'inf'", "run", "--boot-timeout", "inf", "app:app");
}
END_TEST

START_TEST(test_parse_seconds_units) {
    double seconds = -1;
    ck_assert_int_eq(config_parse_seconds("30", &seconds), 0);
    ck_assert_double_eq_tol(seconds, 30, 1e-9);
    ck_assert_int_eq(config_parse_seconds("30s", &seconds), 0);
    ck_assert_double_eq_tol(seconds, 30, 1e-9);
    ck_assert_int_eq(config_parse_seconds("250ms", &seconds), 0);
    ck_assert_double_eq_tol(seconds, 0.25, 1e-9);
    ck_assert_int_eq(config_parse_seconds("1.5m", &seconds), 0);
    ck_assert_double_eq_tol(seconds, 90, 1e-9);
    ck_assert_int_eq(config_parse_seconds("2min", &seconds), 0);
    ck_assert_double_eq_tol(seconds, 120, 1e-9);
    ck_assert_int_eq(config_parse_seconds("", &seconds), -1);
    ck_assert_int_eq(config_parse_seconds("nan", &seconds), -1);
    ck_assert_int_eq(config_parse_seconds(".5", &seconds), -1);
}
END_TEST

/* ---- sizes ---- */

START_TEST(test_max_memory_accepts_sizes) {
    ASSERT_OK(PARSE("run", "--python", PYTHON, "--max-memory", "512M", "app:app"));
    ck_assert_uint_eq(config.max_memory, 512ull * 1024 * 1024);
}
END_TEST

START_TEST(test_max_memory_that_is_not_a_size_is_refused) {
    ASSERT_REFUSED("--max-memory: '12Q' is not a size", "run", "--max-memory", "12Q", "app:app");
    ASSERT_REFUSED("--max-memory: 'lots'", "run", "--max-memory", "lots", "app:app");
    ASSERT_REFUSED("--max-memory: '-1M'", "run", "--max-memory", "-1M", "app:app");
}
END_TEST

START_TEST(test_parse_size_units) {
    uint64_t bytes = 0;
    ck_assert_int_eq(config_parse_size("1048576", &bytes), 0);
    ck_assert_uint_eq(bytes, 1048576);
    ck_assert_int_eq(config_parse_size("2G", &bytes), 0);
    ck_assert_uint_eq(bytes, 2ull << 30);
    ck_assert_int_eq(config_parse_size("1.5GiB", &bytes), 0);
    ck_assert_uint_eq(bytes, 3ull << 29);
    ck_assert_int_eq(config_parse_size("64k", &bytes), 0);
    ck_assert_uint_eq(bytes, 64 * 1024);
    ck_assert_int_eq(config_parse_size("1TB", &bytes), 0);
    ck_assert_uint_eq(bytes, 1ull << 40);
    ck_assert_int_eq(config_parse_size("100000000T", &bytes), -1);
    ck_assert_int_eq(config_parse_size("M", &bytes), -1);
}
END_TEST

/* ---- choices and forwarded uvicorn options ---- */

START_TEST(test_choices_accept_their_values) {
    ASSERT_OK(PARSE("run", "--python", PYTHON, "--loop", "uvloop", "--http", "httptools", "--ws", "wsproto",
                    "--lifespan", "off", "app:app"));
}
END_TEST

START_TEST(test_choice_outside_the_list_is_refused_naming_the_choices) {
    ASSERT_REFUSED("--loop: 'trio' is not one of auto|asyncio|uvloop", "run", "--loop", "trio", "app:app");
    ASSERT_REFUSED("--http: 'h2' is not one of auto|h11|httptools", "run", "--http", "h2", "app:app");
    ASSERT_REFUSED("--ws: 'socketio'", "run", "--ws", "socketio", "app:app");
    ASSERT_REFUSED("--lifespan: 'yes' is not one of auto|on|off", "run", "--lifespan", "yes", "app:app");
    ASSERT_REFUSED("--loop: 'uv'", "run", "--loop", "uv", "app:app"); /* a prefix is not a choice */
}
END_TEST

START_TEST(test_forwarded_options_keep_their_order) {
    ASSERT_OK(PARSE("run", "--python", PYTHON, "--loop", "uvloop", "-w", "2", "--proxy-headers", "--http=h11",
                    "--root-path", "/api", "--timeout-keep-alive", "5", "--forwarded-allow-ips", "*",
                    "--limit-concurrency", "100", "app:app"));
    const char *expected[] = {"--loop", "uvloop", "--proxy-headers", "--http", "h11", "--root-path", "/api",
                              "--timeout-keep-alive", "5", "--forwarded-allow-ips", "*", "--limit-concurrency", "100"};
    size_t n = sizeof expected / sizeof expected[0];
    ck_assert_uint_eq(config.forward.count, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(config.forward.items[i], expected[i]);
    ck_assert_ptr_null(config.forward.items[n]);
}
END_TEST

START_TEST(test_arbiter_options_are_not_forwarded) {
    ASSERT_OK(PARSE("run", "--python", PYTHON, "-w", "2", "--timeout", "5", "--env", "A=1", "app:app"));
    ck_assert_uint_eq(config.forward.count, 0);
}
END_TEST

START_TEST(test_forwarded_numbers_are_checked) {
    ASSERT_REFUSED("--limit-concurrency: '0'", "run", "--limit-concurrency", "0", "app:app");
    ASSERT_REFUSED("--timeout-keep-alive: 'long'", "run", "--timeout-keep-alive", "long", "app:app");
}
END_TEST

START_TEST(test_forwarded_value_must_not_be_empty) {
    ASSERT_REFUSED("--root-path needs a non-empty value", "run", "--root-path", "", "app:app");
}
END_TEST

/* ---- flags without values, logging ---- */

START_TEST(test_flags_without_values_set_their_field) {
    ASSERT_OK(PARSE("run", "--python", PYTHON, "--no-access-log", "--factory", "--reuse-port", "app:create_app"));
    ck_assert(!config.access_log);
    ck_assert(config.factory);
    ck_assert(config.reuse_port);
}
END_TEST

START_TEST(test_log_level_and_format_flags) {
    ASSERT_OK(PARSE("run", "--python", PYTHON, "--log-level", "debug", "--log-format", "json", "app:app"));
    ck_assert_int_eq(config.log_level, LOG_DEBUG);
    ck_assert_int_eq(config.log_format, LOG_FORMAT_JSON);
}
END_TEST

START_TEST(test_log_file_dash_means_stdout_and_opens_no_file) {
    ASSERT_OK(PARSE("run", "--python", PYTHON, "--log-file", "-", "app:app"));
    ck_assert(config.log_to_stdout);
    ck_assert_ptr_null(config.log_file);
}
END_TEST

START_TEST(test_log_file_path_after_dash_is_a_file_again) {
    ASSERT_OK(PARSE("run", "--python", PYTHON, "--log-file", "-", "--log-file", "/var/log/app.log", "app:app"));
    ck_assert(!config.log_to_stdout);
    ck_assert_str_eq(config.log_file, "/var/log/app.log");
}
END_TEST

START_TEST(test_unknown_log_level_or_format_is_refused) {
    ASSERT_REFUSED("--log-level: 'loud'", "run", "--log-level", "loud", "app:app");
    ASSERT_REFUSED("--log-format: 'xml' is not one of text|json", "run", "--log-format", "xml", "app:app");
}
END_TEST

START_TEST(test_string_options_are_copied) {
    ASSERT_OK(PARSE("run", "--python", PYTHON, "--name", "shop", "--control", "/run/shop/ctl.sock", "--user", "www",
                    "--group", "www", "--metrics", "127.0.0.1:9100", "--chdir", "/", "app:app"));
    ck_assert_str_eq(config.name, "shop");
    ck_assert_str_eq(config.control_path, "/run/shop/ctl.sock");
    ck_assert_str_eq(config.user, "www");
    ck_assert_str_eq(config.group, "www");
    ck_assert_str_eq(config.metrics, "127.0.0.1:9100");
    ck_assert_str_eq(config.chdir, "/");
}
END_TEST

START_TEST(test_string_option_given_twice_keeps_the_last) {
    ASSERT_OK(PARSE("run", "--python", PYTHON, "--name", "one", "--name", "two", "app:app"));
    ck_assert_str_eq(config.name, "two");
}
END_TEST

START_TEST(test_empty_string_option_is_refused) {
    ASSERT_REFUSED("--name needs a non-empty value", "run", "--name", "", "app:app");
}
END_TEST

/* ---- --env and --env-file ---- */

START_TEST(test_env_flags_collect_in_order) {
    ASSERT_OK(PARSE("run", "--python", PYTHON, "--env", "A=1", "--env", "B=", "--env", "_C9=x=y", "app:app"));
    ck_assert_uint_eq(config.env.count, 3);
    ck_assert_str_eq(config.env.items[0], "A=1");
    ck_assert_str_eq(config.env.items[1], "B=");
    ck_assert_str_eq(config.env.items[2], "_C9=x=y");
}
END_TEST

START_TEST(test_env_with_invalid_name_is_refused) {
    ASSERT_REFUSED("--env: '1A=x' is not KEY=VALUE", "run", "--env", "1A=x", "app:app");
    ASSERT_REFUSED("--env: '=x'", "run", "--env", "=x", "app:app");
    ASSERT_REFUSED("--env: 'NOEQUALS'", "run", "--env", "NOEQUALS", "app:app");
    ASSERT_REFUSED("--env: 'A-B=x'", "run", "--env", "A-B=x", "app:app");
}
END_TEST

START_TEST(test_env_file_reads_comments_export_and_quotes) {
    char *path = write_scratch("app.env", "# database\n"
                                                "\n"
                                                "DATABASE_URL=postgres://db/app\n"
                                                "export SECRET_KEY=abc\n"
                                                "  GREETING = \"hello world\"  \n"
                                                "SINGLE='it is # not a comment'\n"
                                                "EMPTY=\n"
                                                "QUOTE_ONLY=\"\n"
                                                "WINDOWS=crlf\r\n"
                                                "   # indented comment\n");
    ASSERT_OK(PARSE("run", "--python", PYTHON, "--env-file", path, "app:app"));
    const char *expected[] = {"DATABASE_URL=postgres://db/app", "SECRET_KEY=abc", "GREETING=hello world",
                              "SINGLE=it is # not a comment", "EMPTY=", "QUOTE_ONLY=\"", "WINDOWS=crlf"};
    size_t n = sizeof expected / sizeof expected[0];
    ck_assert_uint_eq(config.env.count, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(config.env.items[i], expected[i]);
}
END_TEST

START_TEST(test_env_file_and_env_flags_keep_command_line_order) {
    char *path = write_scratch("app.env", "A=from-file\n");
    ASSERT_OK(PARSE("run", "--python", PYTHON, "--env", "A=first", "--env-file", path, "--env", "A=last", "app:app"));
    ck_assert_uint_eq(config.env.count, 3);
    ck_assert_str_eq(config.env.items[0], "A=first");
    ck_assert_str_eq(config.env.items[1], "A=from-file");
    ck_assert_str_eq(config.env.items[2], "A=last");
}
END_TEST

START_TEST(test_env_file_missing_is_refused_naming_the_file) {
    char missing[300];
    snprintf(missing, sizeof missing, "%s/missing.env", scratch);
    ASSERT_USAGE_ERROR(PARSE("run", "--env-file", missing, "app:app"), missing);
    ck_assert_ptr_nonnull(strstr(err, "--env-file"));
    ck_assert_ptr_nonnull(strstr(err, "No such file"));
}
END_TEST

START_TEST(test_env_file_line_without_equals_is_refused_with_its_line_number) {
    char *path = write_scratch("bad.env", "A=1\n# ok\nJUST_A_WORD\n");
    char expected[700];
    snprintf(expected, sizeof expected, "%s:3: 'JUST_A_WORD' is not KEY=VALUE", path);
    ASSERT_USAGE_ERROR(PARSE("run", "--env-file", path, "app:app"), expected);
}
END_TEST

START_TEST(test_env_file_invalid_name_is_refused_with_its_line_number) {
    char *path = write_scratch("bad.env", "9LIVES=cat\n");
    char expected[700];
    snprintf(expected, sizeof expected, "%s:1: '9LIVES' is not a valid variable name", path);
    ASSERT_USAGE_ERROR(PARSE("run", "--env-file", path, "app:app"), expected);
}
END_TEST

START_TEST(test_env_file_overlong_line_is_refused) {
    char *text = malloc(10000);
    ck_assert_ptr_nonnull(text);
    memset(text, 'x', 9998);
    memcpy(text, "A=", 2);
    text[9998] = '\n';
    text[9999] = '\0';
    char *path = write_scratch("long.env", text);
    free(text);
    ASSERT_USAGE_ERROR(PARSE("run", "--env-file", path, "app:app"), "line longer than");
}
END_TEST

/* ---- --bind ---- */

START_TEST(test_bind_is_repeatable) {
    ASSERT_OK(PARSE("run", "--python", PYTHON, "-b", "127.0.0.1:9000", "--bind", "unix:/run/app.sock", "app:app"));
    ck_assert_uint_eq(config.bind_count, 2);
    ck_assert_str_eq(config.binds[0].text, "127.0.0.1:9000");
    ck_assert_uint_eq(bind_port(0), 9000);
    ck_assert_int_eq(config.binds[1].kind, BIND_UNIX);
}
END_TEST

START_TEST(test_bad_bind_is_refused_naming_the_flag) {
    ASSERT_REFUSED("--bind: '127.0.0.1' has no port", "run", "--bind", "127.0.0.1", "app:app");
}
END_TEST

START_TEST(test_more_than_listener_max_binds_is_refused) {
    char *argv[2 + 2 * (LISTENER_MAX + 1) + 1];
    int argc = 0;
    argv[argc++] = "run";
    for (int i = 0; i <= LISTENER_MAX; i++) {
        argv[argc++] = "-b";
        argv[argc++] = "127.0.0.1:0";
    }
    argv[argc++] = "app:app";
    argv[argc] = NULL;
    ck_assert_int_eq(config_parse(&config, argc, argv, plain_env, err, sizeof err), CONFIG_USAGE_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "at most 16"));
}
END_TEST

/* ---- --config ---- */

START_TEST(test_config_file_sets_options) {
    char *path = write_scratch("arbiter.json", "{\"workers\": 3, \"bind\": [\"127.0.0.1:9001\", \"unix:/run/a.sock\"],"
                                                     " \"timeout\": 2.5, \"max-memory\": \"1G\", \"access-log\": false,"
                                                     " \"reuse-port\": true, \"env\": [\"A=1\"], \"loop\": \"asyncio\"}");
    ASSERT_OK(PARSE("run", "--python", PYTHON, "--config", path, "app:app"));
    ck_assert_uint_eq(config.workers, 3);
    ck_assert_uint_eq(config.bind_count, 2);
    ck_assert_uint_eq(bind_port(0), 9001);
    ck_assert_int_eq(config.binds[1].kind, BIND_UNIX);
    ck_assert_double_eq_tol(config.timeout, 2.5, 1e-9);
    ck_assert_uint_eq(config.max_memory, 1ull << 30);
    ck_assert(!config.access_log);
    ck_assert(config.reuse_port);
    ck_assert_uint_eq(config.env.count, 1);
    ck_assert_uint_eq(config.forward.count, 2);
    ck_assert_str_eq(config.forward.items[1], "asyncio");
}
END_TEST

START_TEST(test_command_line_overrides_the_config_file) {
    char *path = write_scratch("arbiter.json", "{\"workers\": 3, \"name\": \"from-file\"}");
    /* the file is read first wherever --config appears, so a flag before it still wins */
    ASSERT_OK(PARSE("run", "--python", PYTHON, "-w", "5", "--config", path, "app:app"));
    ck_assert_uint_eq(config.workers, 5);
    ck_assert_str_eq(config.name, "from-file");
}
END_TEST

START_TEST(test_command_line_bind_replaces_the_config_files_binds) {
    char *path = write_scratch("arbiter.json", "{\"bind\": [\"127.0.0.1:9001\", \"127.0.0.1:9002\"]}");
    ASSERT_OK(PARSE("run", "--python", PYTHON, "--config", path, "-b", "127.0.0.1:7000", "app:app"));
    ck_assert_uint_eq(config.bind_count, 1);
    ck_assert_uint_eq(bind_port(0), 7000);
}
END_TEST

START_TEST(test_command_line_env_replaces_the_config_files_env) {
    char *path = write_scratch("arbiter.json", "{\"env\": [\"FILE=1\", \"OTHER=2\"]}");
    ASSERT_OK(PARSE("run", "--python", PYTHON, "--config", path, "--env", "CLI=1", "--env", "CLI2=2", "app:app"));
    ck_assert_uint_eq(config.env.count, 2);
    ck_assert_str_eq(config.env.items[0], "CLI=1");
    ck_assert_str_eq(config.env.items[1], "CLI2=2");
}
END_TEST

START_TEST(test_config_file_binds_kept_without_a_command_line_bind) {
    char *path = write_scratch("arbiter.json", "{\"bind\": \"127.0.0.1:9001\"}");
    ASSERT_OK(PARSE("run", "--python", PYTHON, "--config", path, "app:app"));
    ck_assert_uint_eq(config.bind_count, 1);
    ck_assert_uint_eq(bind_port(0), 9001);
}
END_TEST

START_TEST(test_config_file_unknown_option_is_refused) {
    char *path = write_scratch("arbiter.json", "{\"wokers\": 3}");
    ASSERT_USAGE_ERROR(PARSE("run", "--config", path, "app:app"), "'wokers' is not an option of arbiter run");
    ck_assert_ptr_nonnull(strstr(err, path));
}
END_TEST

START_TEST(test_config_file_cannot_include_another) {
    char *path = write_scratch("arbiter.json", "{\"config\": \"other.json\"}");
    ASSERT_USAGE_ERROR(PARSE("run", "--config", path, "app:app"), "'config' is not an option");
}
END_TEST

START_TEST(test_config_file_invalid_json_is_refused_with_its_line) {
    char *path = write_scratch("arbiter.json", "{\n\"workers\": 3,\n}\n");
    ASSERT_USAGE_ERROR(PARSE("run", "--config", path, "app:app"), "line 3");
    ck_assert_ptr_nonnull(strstr(err, path));
}
END_TEST

START_TEST(test_config_file_must_be_an_object) {
    char *path = write_scratch("arbiter.json", "[\"--workers\", \"3\"]");
    ASSERT_USAGE_ERROR(PARSE("run", "--config", path, "app:app"), "one JSON object");
}
END_TEST

START_TEST(test_config_file_list_for_a_single_value_option_is_refused) {
    char *path = write_scratch("arbiter.json", "{\"workers\": [1, 2]}");
    ASSERT_USAGE_ERROR(PARSE("run", "--config", path, "app:app"), "'workers' takes one value, not a list");
}
END_TEST

START_TEST(test_config_file_flag_needs_a_boolean) {
    char *path = write_scratch("arbiter.json", "{\"factory\": \"yes\"}");
    ASSERT_USAGE_ERROR(PARSE("run", "--config", path, "app:app"), "'factory' takes true or false");
}
END_TEST

START_TEST(test_config_file_bad_value_is_refused_naming_the_file_and_the_key) {
    char *path = write_scratch("arbiter.json", "{\"workers\": \"many\"}");
    char expected[PATH_MAX + 64];
    snprintf(expected, sizeof expected, "--config %s: 'workers': 'many' is not a whole number", path);
    ASSERT_USAGE_ERROR(PARSE("run", "--config", path, "app:app"), expected);
}
END_TEST

START_TEST(test_config_file_missing_is_refused) {
    char missing[300];
    snprintf(missing, sizeof missing, "%s/missing.json", scratch);
    ASSERT_USAGE_ERROR(PARSE("run", "--config", missing, "app:app"), missing);
}
END_TEST

/* ---- --help ---- */

START_TEST(test_help_exits_successfully) {
    int saved = unit_stdout_silence();
    enum config_result result = PARSE("run", "--help");
    unit_stdout_restore(saved);
    ck_assert_int_eq(result, CONFIG_EXIT_OK);
}
END_TEST

START_TEST(test_help_wins_over_a_missing_app) {
    int saved = unit_stdout_silence();
    enum config_result result = PARSE("check", "-h");
    unit_stdout_restore(saved);
    ck_assert_int_eq(result, CONFIG_EXIT_OK);
}
END_TEST

/* ---- usage errors ---- */

START_TEST(test_unknown_long_option_is_refused) {
    ASSERT_USAGE_ERROR(PARSE("run", "--bogus", "app:app"), "unknown option '--bogus'");
}
END_TEST

START_TEST(test_unknown_short_option_is_refused) {
    ASSERT_USAGE_ERROR(PARSE("run", "-x", "app:app"), "unknown option '-x'");
}
END_TEST

START_TEST(test_option_without_its_value_is_refused) {
    ASSERT_USAGE_ERROR(PARSE("run", "app:app", "--workers"), "option '--workers' needs a value");
    config_free(&config);
    ASSERT_USAGE_ERROR(PARSE("run", "app:app", "-w"), "option '-w' needs a value");
}
END_TEST

START_TEST(test_flag_given_a_value_is_refused) {
    ck_assert_int_eq(PARSE("run", "--factory=yes", "app:app"), CONFIG_USAGE_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "--factory"));
}
END_TEST

START_TEST(test_missing_app_is_refused) {
    ASSERT_USAGE_ERROR(PARSE("run", "-w", "2"), "missing APP");
}
END_TEST

START_TEST(test_app_without_colon_is_refused) {
    ASSERT_REFUSED("APP 'main' is not module:attribute", "run", "main");
    ASSERT_REFUSED("APP ':app' is not module:attribute", "run", ":app");
    ASSERT_REFUSED("APP 'main:' is not module:attribute", "run", "main:");
}
END_TEST

START_TEST(test_extra_argument_is_refused) {
    ASSERT_USAGE_ERROR(PARSE("run", "app:app", "other:app"), "unexpected argument 'other:app' after APP 'app:app'");
}
END_TEST

START_TEST(test_options_after_the_app_are_accepted) {
    ASSERT_OK(PARSE("run", "app.main:app", "--python", PYTHON, "-w", "2"));
    ck_assert_str_eq(config.app, "app.main:app");
    ck_assert_uint_eq(config.workers, 2);
}
END_TEST

START_TEST(test_double_dash_ends_the_options) {
    ASSERT_OK(PARSE("run", "--python", PYTHON, "--", "app:app"));
    ck_assert_str_eq(config.app, "app:app");
}
END_TEST

START_TEST(test_invalid_web_concurrency_is_refused) {
    char *envp[] = {"WEB_CONCURRENCY=lots", NULL};
    ASSERT_USAGE_ERROR(PARSE_ENV(envp, "run", "--python", PYTHON, "app:app"), "WEB_CONCURRENCY='lots'");
    config_free(&config);
    char *zero[] = {"WEB_CONCURRENCY=0", NULL};
    ASSERT_USAGE_ERROR(PARSE_ENV(zero, "run", "--python", PYTHON, "app:app"), "WEB_CONCURRENCY='0'");
}
END_TEST

START_TEST(test_invalid_web_concurrency_is_ignored_when_workers_is_given) {
    char *envp[] = {"WEB_CONCURRENCY=lots", NULL};
    ASSERT_OK(PARSE_ENV(envp, "run", "--python", PYTHON, "-w", "2", "app:app"));
    ck_assert_uint_eq(config.workers, 2);
}
END_TEST

START_TEST(test_max_requests_jitter_needs_max_requests) {
    ASSERT_USAGE_ERROR(PARSE("run", "--python", PYTHON, "--max-requests-jitter", "10", "app:app"),
                       "--max-requests-jitter needs --max-requests");
}
END_TEST

START_TEST(test_workers_above_max_workers_is_refused) {
    ASSERT_USAGE_ERROR(PARSE("run", "--python", PYTHON, "-w", "8", "--max-workers", "4", "app:app"),
                       "--workers 8 is more than --max-workers 4");
}
END_TEST

START_TEST(test_default_max_workers_grows_to_fit_the_worker_count) {
    ck_assert_int_eq(PARSE("run", "--python", PYTHON, "-w", "200", "app:app"), CONFIG_OK);
    ck_assert_uint_eq(config.max_workers, 200);
}
END_TEST

START_TEST(test_missing_python_is_refused_naming_the_path) {
    char missing[300];
    snprintf(missing, sizeof missing, "%s/venv/bin/python", scratch);
    ASSERT_USAGE_ERROR(PARSE("run", "--python", missing, "app:app"), missing);
    ck_assert_ptr_nonnull(strstr(err, "--python"));
    ck_assert_ptr_nonnull(strstr(err, "No such file"));
}
END_TEST

START_TEST(test_python_that_is_a_directory_is_refused) {
    ASSERT_USAGE_ERROR(PARSE("run", "--python", scratch, "app:app"), "not an executable file");
}
END_TEST

START_TEST(test_python_that_is_not_executable_is_refused) {
    char *path = write_scratch("python", "#!/bin/sh\n");
    chmod(path, 0644); /* no execute bit at all: even root's access(X_OK) fails */
    ASSERT_USAGE_ERROR(PARSE("run", "--python", path, "app:app"), "not an executable file");
}
END_TEST

START_TEST(test_missing_chdir_is_refused) {
    char missing[300];
    snprintf(missing, sizeof missing, "%s/nowhere", scratch);
    ASSERT_USAGE_ERROR(PARSE("run", "--python", PYTHON, "--chdir", missing, "app:app"), missing);
}
END_TEST

/* BUG (config.c, config_apply_defaults): when stat() succeeds on a --chdir that is a file, the
 * message prints strerror(errno) with errno left over from an earlier call (here ENOENT from the
 * pyvenv.cfg probe), e.g. "--chdir /x/file: No such file or directory", instead of saying it is
 * not a directory. Fix: `stat(...) != 0 ? strerror(errno) : "not a directory"`. */
START_TEST(test_chdir_that_is_a_file_is_refused_as_not_a_directory) {
    char *path = write_scratch("file", "x\n");
    ck_assert_int_eq(PARSE("run", "--chdir", path, "app:app"), CONFIG_USAGE_ERROR);
    ck_assert_msg(strcasestr(err, "not a directory") != NULL, "message '%s' does not say 'not a directory'", err);
}
END_TEST

/* ---- defaults ---- */

START_TEST(test_builtin_defaults) {
    ASSERT_OK(PARSE("run", "--python", PYTHON, "app:app"));
    ck_assert_str_eq(config.command, "run");
    ck_assert_str_eq(config.app, "app:app");
    ck_assert_uint_eq(config.max_workers, 128);
    ck_assert_uint_eq(config.socket_mode, 0660);
    ck_assert_uint_eq(config.backlog, 2048);
    ck_assert_double_eq(config.timeout, 30);
    ck_assert_double_eq(config.boot_timeout, 60);
    ck_assert_double_eq(config.graceful_timeout, 30);
    ck_assert_uint_eq(config.max_requests, 0);
    ck_assert_double_eq(config.max_lifetime, 0);
    ck_assert_uint_eq(config.max_memory, 0);
    ck_assert_str_eq(config.name, "arbiter");
    ck_assert_uint_eq(config.min_ready, 1);
    ck_assert_ptr_null(config.control_path);
    ck_assert_int_eq(config.log_level, LOG_INFO);
    ck_assert_int_eq(config.log_format, LOG_FORMAT_TEXT);
    ck_assert(config.access_log);
    ck_assert(!config.factory);
    ck_assert(!config.reuse_port);
    ck_assert_uint_eq(config.env.count, 0);
    ck_assert_uint_eq(config.forward.count, 0);
}
END_TEST

START_TEST(test_default_bind_is_localhost_8000) {
    ASSERT_OK(PARSE("run", "--python", PYTHON, "app:app"));
    ck_assert_uint_eq(config.bind_count, 1);
    ck_assert_int_eq(config.binds[0].kind, BIND_INET);
    ck_assert_str_eq(config.binds[0].text, "127.0.0.1:8000");
    ck_assert_uint_eq(bind_port(0), 8000);
}
END_TEST

START_TEST(test_no_default_bind_under_socket_activation) {
    char *envp[] = {"LISTEN_FDS=1", "LISTEN_PID=1", NULL};
    ASSERT_OK(PARSE_ENV(envp, "run", "--python", PYTHON, "app:app"));
    ck_assert_uint_eq(config.bind_count, 0);
}
END_TEST

START_TEST(test_workers_default_to_web_concurrency) {
    char *envp[] = {"WEB_CONCURRENCY=6", NULL};
    ASSERT_OK(PARSE_ENV(envp, "run", "--python", PYTHON, "app:app"));
    ck_assert_uint_eq(config.workers, 6);
}
END_TEST

START_TEST(test_workers_default_to_usable_cpus) {
    unsigned cpus = config_usable_cpus();
    ck_assert_uint_ge(cpus, 1);
    if (cpus > 128)
        return; /* see test_default_max_workers_grows_to_fit_the_worker_count */
    ASSERT_OK(PARSE("run", "--python", PYTHON, "app:app"));
    ck_assert_uint_eq(config.workers, cpus);
}
END_TEST

START_TEST(test_empty_web_concurrency_means_unset) {
    char *envp[] = {"WEB_CONCURRENCY=", NULL};
    ASSERT_OK(PARSE_ENV(envp, "run", "--python", PYTHON, "app:app"));
    ck_assert_uint_eq(config.workers, config_usable_cpus());
}
END_TEST

START_TEST(test_check_runs_one_worker) {
    char *envp[] = {"WEB_CONCURRENCY=6", NULL};
    ASSERT_OK(PARSE_ENV(envp, "check", "--python", PYTHON, "-w", "4", "app:app"));
    ck_assert_str_eq(config.command, "check");
    ck_assert_uint_eq(config.workers, 1);
}
END_TEST

START_TEST(test_python_defaults_to_the_virtual_envs) {
    char bin[300], python[320], venv_env[320];
    snprintf(bin, sizeof bin, "%s/bin", scratch);
    snprintf(python, sizeof python, "%s/python", bin);
    ck_assert_int_eq(mkdir(bin, 0755), 0);
    FILE *file = fopen(python, "w");
    ck_assert_ptr_nonnull(file);
    fputs("#!/bin/sh\n", file);
    fclose(file);
    chmod(python, 0755);
    snprintf(venv_env, sizeof venv_env, "VIRTUAL_ENV=%s", scratch);
    char *envp[] = {venv_env, NULL};
    enum config_result result = PARSE_ENV(envp, "run", "app:app");
    ck_assert_msg(result == CONFIG_OK, "%s", err);
    ck_assert_str_eq(config.python, python);
}
END_TEST

START_TEST(test_virtual_env_without_python_is_refused_naming_the_path) {
    char venv_env[320], expected[320];
    snprintf(venv_env, sizeof venv_env, "VIRTUAL_ENV=%s", scratch);
    snprintf(expected, sizeof expected, "%s/bin/python", scratch);
    char *envp[] = {venv_env, NULL};
    ASSERT_USAGE_ERROR(PARSE_ENV(envp, "run", "app:app"), expected);
}
END_TEST

START_TEST(test_python_flag_overrides_the_virtual_env) {
    char *envp[] = {"VIRTUAL_ENV=/nonexistent/venv", NULL};
    ASSERT_OK(PARSE_ENV(envp, "run", "--python", PYTHON, "app:app"));
    ck_assert_str_eq(config.python, PYTHON);
}
END_TEST

START_TEST(test_python_defaults_to_python3_on_path_outside_a_venv) {
    char *envp[] = {"PATH=/nonexistent:/usr/bin", NULL};
    ASSERT_OK(PARSE_ENV(envp, "run", "app:app"));
    ck_assert_str_eq(config.python, "/usr/bin/python3");
}
END_TEST

START_TEST(test_bare_python_missing_from_path_is_a_usage_error_naming_it) {
    char *envp[] = {"PATH=/nonexistent:/usr/bin", NULL};
    ASSERT_USAGE_ERROR(PARSE_ENV(envp, "run", "--python", "python3.99", "app:app"), "--python python3.99: not found on PATH");
}
END_TEST

START_TEST(test_control_defaults_to_arbiter_control) {
    char *envp[] = {"ARBITER_CONTROL=/run/app/control.sock", NULL};
    ASSERT_OK(PARSE_ENV(envp, "run", "--python", PYTHON, "app:app"));
    ck_assert_str_eq(config.control_path, "/run/app/control.sock");
    config_free(&config);
    ASSERT_OK(PARSE_ENV(envp, "run", "--python", PYTHON, "--control", "/tmp/c.sock", "app:app"));
    ck_assert_str_eq(config.control_path, "/tmp/c.sock");
}
END_TEST

START_TEST(test_parse_twice_starts_afresh) {
    ASSERT_OK(PARSE("run", "--python", PYTHON, "-w", "3", "--env", "A=1", "--loop", "asyncio", "app:app"));
    config_free(&config);
    ASSERT_OK(PARSE("run", "--python", PYTHON, "-w", "2", "other:app"));
    ck_assert_uint_eq(config.workers, 2);
    ck_assert_str_eq(config.app, "other:app");
    ck_assert_uint_eq(config.env.count, 0);
    ck_assert_uint_eq(config.forward.count, 0);
}
END_TEST

/* ---- gunicorn's and uvicorn's spellings ---- */

/* Two parses that must give the same configuration: what the arbiter and its workers are told. */
static void assert_same_config(const struct config *a, const struct config *b, const char *alias) {
    ck_assert_msg(a->workers == b->workers && a->timeout == b->timeout && a->graceful_timeout == b->graceful_timeout,
                  "%s: numbers differ", alias);
    ck_assert_msg(a->bind_count == b->bind_count, "%s: %zu binds vs %zu", alias, a->bind_count, b->bind_count);
    for (size_t i = 0; i < a->bind_count; i++)
        ck_assert_msg(memcmp(&a->binds[i], &b->binds[i], sizeof a->binds[i]) == 0, "%s: bind %zu differs", alias, i);
    ck_assert_msg(a->access_log == b->access_log && a->log_to_stdout == b->log_to_stdout && a->preload == b->preload,
                  "%s: log or preload flags differ", alias);
    const char *strings[][2] = {{a->log_file, b->log_file}, {a->name, b->name}, {a->pid_file, b->pid_file},
                                {a->chdir, b->chdir}, {a->user, b->user}};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        ck_assert_msg(strings[i][0] == strings[i][1] || (strings[i][0] && strings[i][1] && !strcmp(strings[i][0], strings[i][1])),
                      "%s: '%s' vs '%s'", alias, strings[i][0] ? strings[i][0] : "(none)", strings[i][1] ? strings[i][1] : "(none)");
    const struct string_list *lists[][2] = {{&a->forward, &b->forward}, {&a->env, &b->env}};
    for (size_t i = 0; i < 2; i++) {
        ck_assert_msg(lists[i][0]->count == lists[i][1]->count, "%s: list %zu: %zu vs %zu items", alias, i,
                      lists[i][0]->count, lists[i][1]->count);
        for (size_t j = 0; j < lists[i][0]->count; j++)
            ck_assert_str_eq(lists[i][0]->items[j], lists[i][1]->items[j]);
    }
}

START_TEST(test_every_gunicorn_and_uvicorn_alias_parses_to_its_arbiter_option) {
    char *gunicorn = strdup(write_scratch("gunicorn.conf.py", "bind = '127.0.0.1:9001'\nworkers = 3\n"
                                          "worker_class = 'uvicorn.workers.UvicornWorker'\naccesslog = '-'\n"));
    char *json = strdup(write_scratch("arbiter.json", "{\"bind\": [\"127.0.0.1:9001\"], \"workers\": 3, \"access-log\": true}"));
    /* {alias..., NULL, arbiter's own..., NULL}: each side is given after the same common flags. */
    const char *rows[][8] = {
        {"-k", "uvicorn.workers.UvicornWorker", NULL, NULL},
        {"--worker-class", "uvicorn_worker.UvicornWorker", NULL, NULL},
        {"--keep-alive", "7", NULL, "--timeout-keep-alive", "7", NULL},
        {"--access-logfile", "-", NULL, "--access-log", NULL},
        {"--error-logfile", "/var/log/app.log", NULL, "--log-file", "/var/log/app.log", NULL},
        {"--log-file", "-", "--error-logfile", "-", NULL, NULL},
        {"--uds", "/run/app.sock", NULL, "--bind", "unix:/run/app.sock", NULL},
        {"--fd", "3", NULL, "--bind", "fd://3", NULL},
        {"-e", "A=1", NULL, "--env", "A=1", NULL},
        {"-n", "web", NULL, "--name", "web", NULL},
        {"-p", "/run/app.pid", NULL, "--pid", "/run/app.pid", NULL},
        {"--worker-tmp-dir", "/dev/shm", NULL, NULL},
        {"-c", gunicorn, NULL, "--config", json, NULL},
        {"--config", gunicorn, NULL, "--config", json, NULL},
    };
    config_set_python_loader(migrate_load_for_run);
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        struct config sides[2];
        for (int side = 0; side < 2; side++) {
            char *argv[16] = {"run", "--python", PYTHON, "--no-access-log"};
            int argc = 4;
            const char *const *p = rows[r];
            if (side == 1)
                while (*p++)
                    ;
            while (*p)
                argv[argc++] = (char *)*p++;
            argv[argc++] = "app:app";
            ck_assert_msg(config_parse(&sides[side], argc, argv, plain_env, err, sizeof err) == CONFIG_OK,
                          "%s (side %d): %s", rows[r][0], side, err);
        }
        assert_same_config(&sides[0], &sides[1], rows[r][0]);
        config_free(&sides[0]);
        config_free(&sides[1]);
    }
    config_set_python_loader(NULL);
    free(gunicorn);
    free(json);
}
END_TEST

START_TEST(test_uvicorn_worker_class_is_accepted_with_a_notice) {
    ASSERT_OK(PARSE("run", "--python", PYTHON, "-k", "uvicorn.workers.UvicornWorker", "app:app"));
    ck_assert_uint_eq(config.notices.count, 1);
    ck_assert_ptr_nonnull(strstr(config.notices.items[0], "arbiter's workers are uvicorn's"));
}
END_TEST

START_TEST(test_other_worker_classes_are_refused_naming_the_class_and_why) {
    char *classes[] = {"sync", "gthread", "gevent", "eventlet", "tornado", "asgi"};
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++) {
        char expected[64];
        snprintf(expected, sizeof expected, "--worker-class %s: arbiter serves ASGI apps with uvicorn", classes[i]);
        ASSERT_REFUSED(expected, "run", "--python", PYTHON, "-k", classes[i], "app:app");
    }
}
END_TEST

START_TEST(test_daemon_and_reload_are_refused_with_the_reason) {
    ASSERT_REFUSED("--daemon refused: arbiter stays in the foreground", "run", "--python", PYTHON, "-D", "app:app");
    ASSERT_REFUSED("use systemd", "run", "--python", PYTHON, "--daemon", "app:app");
    ASSERT_REFUSED("--reload refused: uvicorn's --reload watches files, for development", "run", "--python", PYTHON,
                   "--reload", "app:app");
}
END_TEST

START_TEST(test_access_logfile_to_a_file_is_refused_naming_log_file) {
    ASSERT_REFUSED("--log-file /var/log/access.log", "run", "--python", PYTHON, "--access-logfile",
                   "/var/log/access.log", "app:app");
}
END_TEST

START_TEST(test_bad_value_of_an_alias_names_the_alias_given) {
    ASSERT_REFUSED("(given as --keep-alive)", "run", "--python", PYTHON, "--keep-alive", "soon", "app:app");
}
END_TEST

START_TEST(test_gunicorn_config_is_refused_without_a_python_loader) {
    char *path = write_scratch("g.py", "workers = 2\n");
    ASSERT_USAGE_ERROR(PARSE("run", "--python", PYTHON, "-c", path, "app:app"), "arbiter migrate");
}
END_TEST

/* ---- string_list ---- */

START_TEST(test_string_list_is_null_terminated_and_bounded) {
    struct string_list list = {0};
    for (int i = 0; i < 4096; i++)
        ck_assert_int_eq(string_list_append(&list, "X=1"), 0);
    ck_assert_int_eq(string_list_append(&list, "X=1"), -1);
    ck_assert_uint_eq(list.count, 4096);
    ck_assert_ptr_null(list.items[list.count]);
    string_list_free(&list);
    ck_assert_uint_eq(list.count, 0);
    ck_assert_ptr_null(list.items);
}
END_TEST

Suite *config_suite(void) {
    Suite *suite = suite_create("config");
    struct {
        const char *name;
        const TTest *tests[40];
    } cases[] = {
        {"numbers",
         {test_workers_flag_sets_the_worker_count, test_workers_long_flag_with_equals,
          test_workers_out_of_range_is_refused, test_workers_not_a_number_is_refused, test_backlog_accepts_up_to_65535,
          test_max_requests_with_jitter, test_min_ready_sets_the_healthz_threshold, test_socket_mode_is_octal,
          test_every_numeric_flag_accepts_both_ends_of_its_range,
          test_every_numeric_flag_outside_its_range_is_refused_naming_the_flag_and_the_range,
          test_max_requests_jitter_of_uint_max_is_refused, test_largest_max_requests_plus_largest_jitter_fits_an_unsigned,
          test_lame_duck_is_also_a_config_file_key, test_min_ready_above_max_workers_is_refused}},
        {"durations",
         {test_durations_accept_seconds_and_units, test_duration_zero_means_never,
          test_duration_out_of_range_is_refused, test_duration_with_unknown_unit_is_refused, test_parse_seconds_units}},
        {"sizes", {test_max_memory_accepts_sizes, test_max_memory_that_is_not_a_size_is_refused, test_parse_size_units}},
        {"choices",
         {test_choices_accept_their_values, test_choice_outside_the_list_is_refused_naming_the_choices,
          test_forwarded_options_keep_their_order, test_arbiter_options_are_not_forwarded,
          test_forwarded_numbers_are_checked, test_forwarded_value_must_not_be_empty}},
        {"flags",
         {test_flags_without_values_set_their_field, test_log_level_and_format_flags, test_log_file_dash_means_stdout_and_opens_no_file,
          test_log_file_path_after_dash_is_a_file_again, test_unknown_log_level_or_format_is_refused,
          test_string_options_are_copied, test_string_option_given_twice_keeps_the_last,
          test_empty_string_option_is_refused}},
        {"env",
         {test_env_flags_collect_in_order, test_env_with_invalid_name_is_refused,
          test_env_file_reads_comments_export_and_quotes, test_env_file_and_env_flags_keep_command_line_order,
          test_env_file_missing_is_refused_naming_the_file,
          test_env_file_line_without_equals_is_refused_with_its_line_number,
          test_env_file_invalid_name_is_refused_with_its_line_number, test_env_file_overlong_line_is_refused}},
        {"bind",
         {test_bind_is_repeatable, test_bad_bind_is_refused_naming_the_flag,
          test_more_than_listener_max_binds_is_refused}},
        {"config_file",
         {test_config_file_sets_options, test_command_line_overrides_the_config_file,
          test_command_line_bind_replaces_the_config_files_binds, test_command_line_env_replaces_the_config_files_env,
          test_config_file_binds_kept_without_a_command_line_bind, test_config_file_unknown_option_is_refused,
          test_config_file_cannot_include_another, test_config_file_invalid_json_is_refused_with_its_line,
          test_config_file_must_be_an_object, test_config_file_list_for_a_single_value_option_is_refused,
          test_config_file_flag_needs_a_boolean, test_config_file_bad_value_is_refused_naming_the_file_and_the_key,
          test_config_file_missing_is_refused}},
        {"gunicorn",
         {test_every_gunicorn_and_uvicorn_alias_parses_to_its_arbiter_option,
          test_uvicorn_worker_class_is_accepted_with_a_notice,
          test_other_worker_classes_are_refused_naming_the_class_and_why, test_daemon_and_reload_are_refused_with_the_reason,
          test_access_logfile_to_a_file_is_refused_naming_log_file, test_bad_value_of_an_alias_names_the_alias_given,
          test_gunicorn_config_is_refused_without_a_python_loader}},
        {"help", {test_help_exits_successfully, test_help_wins_over_a_missing_app}},
        {"usage_errors",
         {test_unknown_long_option_is_refused, test_unknown_short_option_is_refused,
          test_option_without_its_value_is_refused, test_flag_given_a_value_is_refused, test_missing_app_is_refused,
          test_app_without_colon_is_refused, test_extra_argument_is_refused, test_options_after_the_app_are_accepted,
          test_double_dash_ends_the_options, test_invalid_web_concurrency_is_refused,
          test_invalid_web_concurrency_is_ignored_when_workers_is_given, test_max_requests_jitter_needs_max_requests,
          test_workers_above_max_workers_is_refused, test_default_max_workers_grows_to_fit_the_worker_count,
          test_missing_python_is_refused_naming_the_path, test_python_that_is_a_directory_is_refused,
          test_python_that_is_not_executable_is_refused, test_missing_chdir_is_refused,
          test_chdir_that_is_a_file_is_refused_as_not_a_directory}},
        {"defaults",
         {test_builtin_defaults, test_default_bind_is_localhost_8000, test_no_default_bind_under_socket_activation,
          test_workers_default_to_web_concurrency, test_workers_default_to_usable_cpus,
          test_empty_web_concurrency_means_unset, test_check_runs_one_worker, test_python_defaults_to_the_virtual_envs,
          test_virtual_env_without_python_is_refused_naming_the_path, test_python_flag_overrides_the_virtual_env,
          test_python_defaults_to_python3_on_path_outside_a_venv, test_bare_python_missing_from_path_is_a_usage_error_naming_it,
          test_control_defaults_to_arbiter_control,
          test_parse_twice_starts_afresh, test_string_list_is_null_terminated_and_bounded}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_checked_fixture(tc, setup, teardown);
        for (size_t j = 0; cases[i].tests[j]; j++)
            tcase_add_test(tc, cases[i].tests[j]);
        suite_add_tcase(suite, tc);
    }
    return suite;
}
