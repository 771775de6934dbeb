/* test_notify.c - NOTIFY_SOCKET and WATCHDOG_* as systemd sets them. */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "notify.h"
#include "unit.h"

START_TEST(test_notify_path_address_length_counts_the_trailing_nul) {
    struct sockaddr_un address;
    socklen_t length = 0;
    char err[256];
    ck_assert_int_eq(notify_parse_address("/run/systemd/notify", &address, &length, err, sizeof err), 0);
    ck_assert_int_eq(address.sun_family, AF_UNIX);
    ck_assert_str_eq(address.sun_path, "/run/systemd/notify");
    ck_assert_uint_eq(length, offsetof(struct sockaddr_un, sun_path) + strlen("/run/systemd/notify") + 1);
}
END_TEST

START_TEST(test_notify_abstract_address_starts_with_nul_and_has_no_trailing_nul) {
    struct sockaddr_un address;
    socklen_t length = 0;
    char err[256];
    ck_assert_int_eq(notify_parse_address("@abstract", &address, &length, err, sizeof err), 0);
    ck_assert_int_eq(address.sun_path[0], '\0');
    ck_assert_int_eq(memcmp(address.sun_path + 1, "abstract", 8), 0);
    /* the leading NUL stands for '@': the length is that byte plus the name, nothing more */
    ck_assert_uint_eq(length, offsetof(struct sockaddr_un, sun_path) + strlen("@abstract"));
}
END_TEST

/* The real proof that the abstract length is right: a datagram reaches a socket bound the way
 * systemd binds it. A length one byte too long names a different socket and the send fails. */
START_TEST(test_notify_send_reaches_an_abstract_socket) {
    char name[64];
    snprintf(name, sizeof name, "arbiter-unit-notify-%d", (int)getpid());
    struct sockaddr_un bound = {.sun_family = AF_UNIX};
    memcpy(bound.sun_path + 1, name, strlen(name));
    int receiver = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(receiver, 0);
    ck_assert_int_eq(bind(receiver, (struct sockaddr *)&bound,
                          (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name))), 0);

    struct notify notify = {.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
    char text[80], err[256];
    snprintf(text, sizeof text, "@%s", name);
    ck_assert_int_eq(notify_parse_address(text, &notify.address, &notify.address_length, err, sizeof err), 0);
    notify_send(&notify, "READY=1\nSTATUS=%s", "serving");

    char message[128] = {0};
    ssize_t n = recv(receiver, message, sizeof message - 1, MSG_DONTWAIT);
    ck_assert_int_gt(n, 0);
    ck_assert_str_eq(message, "READY=1\nSTATUS=serving");
    notify_close(&notify);
    close(receiver);
}
END_TEST

START_TEST(test_notify_relative_path_is_refused) {
    struct sockaddr_un address;
    socklen_t length = 0;
    char err[256] = "";
    ck_assert_int_eq(notify_parse_address("run/systemd/notify", &address, &length, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "run/systemd/notify"));
}
END_TEST

START_TEST(test_notify_empty_address_is_refused) {
    struct sockaddr_un address;
    socklen_t length = 0;
    char err[256] = "";
    ck_assert_int_eq(notify_parse_address("", &address, &length, err, sizeof err), -1);
    ck_assert_str_ne(err, "");
}
END_TEST

START_TEST(test_notify_address_longer_than_sun_path_is_refused) {
    char text[sizeof((struct sockaddr_un *)0)->sun_path + 8];
    memset(text, 'a', sizeof text - 1);
    text[0] = '/';
    text[sizeof text - 1] = '\0';
    struct sockaddr_un address;
    socklen_t length = 0;
    char err[256] = "";
    ck_assert_int_eq(notify_parse_address(text, &address, &length, err, sizeof err), -1);
    ck_assert_str_ne(err, "");
}
END_TEST

START_TEST(test_watchdog_without_pid_applies_to_us) {
    ck_assert_uint_eq(notify_parse_watchdog("30000000", NULL, 1234), 30000000u);
    ck_assert_uint_eq(notify_parse_watchdog("30000000", "", 1234), 30000000u);
}
END_TEST

START_TEST(test_watchdog_with_our_pid_applies) {
    ck_assert_uint_eq(notify_parse_watchdog("5000000", "1234", 1234), 5000000u);
}
END_TEST

START_TEST(test_watchdog_for_another_pid_is_ignored) {
    ck_assert_uint_eq(notify_parse_watchdog("5000000", "999", 1234), 0);
}
END_TEST

START_TEST(test_watchdog_absent_is_off) {
    ck_assert_uint_eq(notify_parse_watchdog(NULL, NULL, 1234), 0);
    ck_assert_uint_eq(notify_parse_watchdog("", "1234", 1234), 0);
}
END_TEST

START_TEST(test_watchdog_garbage_usec_is_off) {
    ck_assert_uint_eq(notify_parse_watchdog("abc", NULL, 1234), 0);
    ck_assert_uint_eq(notify_parse_watchdog("30s", NULL, 1234), 0);
    ck_assert_uint_eq(notify_parse_watchdog("0", NULL, 1234), 0);
    ck_assert_uint_eq(notify_parse_watchdog("99999999999999999999999", NULL, 1234), 0);
}
END_TEST

/* strtoull accepts a sign and wraps "-5" to 2^64-5: a huge watchdog interval, never a ping. */
START_TEST(test_watchdog_negative_usec_is_off) {
    ck_assert_uint_eq(notify_parse_watchdog("-5", NULL, 1234), 0);
    ck_assert_uint_eq(notify_parse_watchdog(" 5", NULL, 1234), 0);
}
END_TEST

START_TEST(test_watchdog_garbage_pid_is_not_ours) {
    ck_assert_uint_eq(notify_parse_watchdog("5000000", "12x", 12), 0);
    ck_assert_uint_eq(notify_parse_watchdog("5000000", "pid", 0), 0);
}
END_TEST

START_TEST(test_fd_names_are_valid_fdnames_without_colons) {
    char name[64];
    notify_fd_name("127.0.0.1:8000", 0, name, sizeof name);
    ck_assert_str_eq(name, "arbiter-0-127.0.0.1_8000");
    notify_fd_name("[::1]:80", 3, name, sizeof name);
    ck_assert_str_eq(name, "arbiter-3-[__1]_80");
    notify_fd_name("unix:/run/app/a b.sock", 1, name, 16);
    ck_assert_uint_eq(strlen(name), 15);
    ck_assert_ptr_null(strchr(name, ':'));
}
END_TEST

Suite *notify_suite(void) {
    Suite *suite = suite_create("notify");
    TCase *address = tcase_create("address");
    tcase_add_test(address, test_notify_path_address_length_counts_the_trailing_nul);
    tcase_add_test(address, test_notify_abstract_address_starts_with_nul_and_has_no_trailing_nul);
    tcase_add_test(address, test_notify_send_reaches_an_abstract_socket);
    tcase_add_test(address, test_notify_relative_path_is_refused);
    tcase_add_test(address, test_notify_empty_address_is_refused);
    tcase_add_test(address, test_notify_address_longer_than_sun_path_is_refused);
    tcase_add_test(address, test_fd_names_are_valid_fdnames_without_colons);
    suite_add_tcase(suite, address);
    TCase *watchdog = tcase_create("watchdog");
    tcase_add_test(watchdog, test_watchdog_without_pid_applies_to_us);
    tcase_add_test(watchdog, test_watchdog_with_our_pid_applies);
    tcase_add_test(watchdog, test_watchdog_for_another_pid_is_ignored);
    tcase_add_test(watchdog, test_watchdog_absent_is_off);
    tcase_add_test(watchdog, test_watchdog_garbage_usec_is_off);
    tcase_add_test(watchdog, test_watchdog_negative_usec_is_off);
    tcase_add_test(watchdog, test_watchdog_garbage_pid_is_not_ours);
    suite_add_tcase(suite, watchdog);
    return suite;
}
