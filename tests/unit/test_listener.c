/* test_listener.c - --bind addresses, socket activation counts and the sockets themselves. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "listener.h"
#include "unit.h"

static struct bind_address parse_ok(const char *text) {
    struct bind_address address;
    char err[256] = "";
    ck_assert_msg(listener_parse_address(text, &address, err, sizeof err) == 0, "%s: %s", text, err);
    ck_assert_str_eq(address.text, text);
    return address;
}

static void parse_fails(const char *text, const char *expected_in_message) {
    struct bind_address address;
    char err[256] = "";
    ck_assert_msg(listener_parse_address(text, &address, err, sizeof err) == -1, "'%s' was accepted", text);
    ck_assert_msg(strstr(err, expected_in_message) != NULL, "'%s': message '%s' lacks '%s'", text, err,
                  expected_in_message);
}

static unsigned inet_port(const struct bind_address *address) {
    if (address->addr.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&address->addr)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&address->addr)->sin6_port);
}

/* ---- parsing ---- */

START_TEST(test_parse_ipv4_host_and_port) {
    struct bind_address address = parse_ok("127.0.0.1:8000");
    ck_assert_int_eq(address.kind, BIND_INET);
    ck_assert_int_eq(address.addr.ss_family, AF_INET);
    const struct sockaddr_in *in = (const struct sockaddr_in *)&address.addr;
    ck_assert_uint_eq(ntohl(in->sin_addr.s_addr), INADDR_LOOPBACK);
    ck_assert_uint_eq(inet_port(&address), 8000);
    ck_assert_uint_eq(address.addr_len, sizeof(struct sockaddr_in));
}
END_TEST

START_TEST(test_parse_port_alone_means_every_ipv4_interface) {
    struct bind_address address = parse_ok(":8000");
    ck_assert_int_eq(address.kind, BIND_INET);
    ck_assert_int_eq(address.addr.ss_family, AF_INET);
    ck_assert_uint_eq(((const struct sockaddr_in *)&address.addr)->sin_addr.s_addr, htonl(INADDR_ANY));
    ck_assert_uint_eq(inet_port(&address), 8000);
}
END_TEST

START_TEST(test_parse_bracketed_ipv6) {
    struct bind_address address = parse_ok("[::1]:9000");
    ck_assert_int_eq(address.kind, BIND_INET);
    ck_assert_int_eq(address.addr.ss_family, AF_INET6);
    ck_assert(IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)&address.addr)->sin6_addr));
    ck_assert_uint_eq(inet_port(&address), 9000);
}
END_TEST

START_TEST(test_parse_host_name_resolves_to_loopback) {
    struct bind_address address = parse_ok("localhost:80");
    ck_assert_int_eq(address.kind, BIND_INET);
    if (address.addr.ss_family == AF_INET)
        ck_assert_uint_eq(ntohl(((const struct sockaddr_in *)&address.addr)->sin_addr.s_addr), INADDR_LOOPBACK);
    else
        ck_assert(IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)&address.addr)->sin6_addr));
    ck_assert_uint_eq(inet_port(&address), 80);
}
END_TEST

START_TEST(test_parse_unix_path) {
    struct bind_address address = parse_ok("unix:/run/app/app.sock");
    ck_assert_int_eq(address.kind, BIND_UNIX);
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&address.addr;
    ck_assert_int_eq(sun->sun_family, AF_UNIX);
    ck_assert_str_eq(sun->sun_path, "/run/app/app.sock");
    ck_assert_uint_eq(address.addr_len, offsetof(struct sockaddr_un, sun_path) + strlen("/run/app/app.sock") + 1);
}
END_TEST

START_TEST(test_parse_inherited_fd) {
    struct bind_address address = parse_ok("fd://3");
    ck_assert_int_eq(address.kind, BIND_FD);
    ck_assert_int_eq(address.fd, 3);
}
END_TEST

START_TEST(test_parse_address_without_port_is_refused) {
    parse_fails("127.0.0.1", "no port");
}
END_TEST

START_TEST(test_parse_port_above_65535_is_refused) {
    parse_fails("127.0.0.1:70000", "70000");
}
END_TEST

START_TEST(test_parse_port_that_is_not_a_number_is_refused) {
    parse_fails("127.0.0.1:http", "port 'http'");
    parse_fails("127.0.0.1:", "port ''");
    parse_fails("127.0.0.1:-1", "port '-1'");
}
END_TEST

START_TEST(test_parse_ipv6_without_brackets_is_refused) {
    parse_fails("::1:9000", "brackets");
}
END_TEST

START_TEST(test_parse_ipv6_without_port_is_refused) {
    parse_fails("[::1]", "[::1]:8000");
}
END_TEST

START_TEST(test_parse_unix_without_path_is_refused) {
    parse_fails("unix:", "needs a path");
}
END_TEST

START_TEST(test_parse_unix_path_longer_than_sun_path_is_refused) {
    char text[140] = "unix:/";
    memset(text + 6, 'a', 120);
    text[126] = '\0';
    parse_fails(text, "longer than");
}
END_TEST

START_TEST(test_parse_fd_that_is_not_a_number_is_refused) {
    parse_fails("fd://x", "fd://x");
    parse_fails("fd://", "not a file descriptor");
    parse_fails("fd://-1", "not a file descriptor");
}
END_TEST

START_TEST(test_parse_empty_address_is_refused) {
    parse_fails("", "empty");
}
END_TEST

START_TEST(test_parse_overlong_address_is_refused) {
    char text[LISTENER_TEXT_MAX + 10];
    memset(text, 'a', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    parse_fails(text, "longer than");
}
END_TEST

START_TEST(test_parse_unresolvable_host_is_refused) {
    parse_fails("no-such-host.invalid:8000", "cannot resolve");
}
END_TEST

/* ---- systemd socket activation ---- */

START_TEST(test_systemd_count_absent_is_zero) {
    unsigned count = 99;
    char err[256] = "";
    ck_assert_int_eq(listener_systemd_count(NULL, NULL, 100, &count, err, sizeof err), 0);
    ck_assert_uint_eq(count, 0);
    ck_assert_int_eq(listener_systemd_count("100", "", 100, &count, err, sizeof err), 0);
    ck_assert_uint_eq(count, 0);
}
END_TEST

START_TEST(test_systemd_count_for_another_pid_is_zero) {
    unsigned count = 99;
    char err[256] = "";
    ck_assert_int_eq(listener_systemd_count("101", "2", 100, &count, err, sizeof err), 0);
    ck_assert_uint_eq(count, 0);
}
END_TEST

START_TEST(test_systemd_count_for_us) {
    unsigned count = 0;
    char err[256] = "";
    ck_assert_int_eq(listener_systemd_count("100", "2", 100, &count, err, sizeof err), 0);
    ck_assert_uint_eq(count, 2);
}
END_TEST

START_TEST(test_systemd_count_malformed_pid_is_an_error) {
    unsigned count = 0;
    char err[256] = "";
    ck_assert_int_eq(listener_systemd_count("abc", "2", 100, &count, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "LISTEN_PID"));
    ck_assert_int_eq(listener_systemd_count(NULL, "2", 100, &count, err, sizeof err), -1);
}
END_TEST

START_TEST(test_systemd_count_malformed_fds_is_an_error) {
    unsigned count = 0;
    char err[256] = "";
    ck_assert_int_eq(listener_systemd_count("100", "two", 100, &count, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "LISTEN_FDS"));
    ck_assert_int_eq(listener_systemd_count("100", "-1", 100, &count, err, sizeof err), -1);
    ck_assert_int_eq(listener_systemd_count("100", "17", 100, &count, err, sizeof err), -1);
    ck_assert_uint_eq(count, 0);
}
END_TEST

/* ---- opening sockets ---- */

static char scratch[256];

static void scratch_setup(void) { scratch_dir_create(scratch, sizeof scratch); }
static void scratch_teardown(void) { scratch_dir_remove(scratch); }

START_TEST(test_open_tcp_on_an_ephemeral_port) {
    struct bind_address address = parse_ok("127.0.0.1:0");
    struct listener_set set = {0};
    char err[512] = "";
    ck_assert_msg(listener_open_all(&set, &address, 1, 16, 0660, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(set.count, 1);
    ck_assert_int_ge(set.items[0].fd, 0);
    ck_assert(!set.items[0].adopted);
    ck_assert_int_eq(listener_check_fd(set.items[0].fd, err, sizeof err), 0);
    ck_assert_ptr_nonnull(strstr(set.items[0].name, "127.0.0.1:"));
    ck_assert_str_ne(set.items[0].name, "127.0.0.1:0");
    listener_close_all(&set);
    ck_assert_uint_eq(set.count, 0);
}
END_TEST

START_TEST(test_open_tcp_address_in_use_names_the_address) {
    struct bind_address address = parse_ok("127.0.0.1:0");
    struct listener_set first = {0};
    char err[512] = "";
    ck_assert_msg(listener_open_all(&first, &address, 1, 16, 0660, err, sizeof err) == 0, "%s", err);

    char taken[LISTENER_TEXT_MAX];
    snprintf(taken, sizeof taken, "%s", first.items[0].name);
    struct bind_address again = parse_ok(taken);
    struct listener_set second = {0};
    ck_assert_int_eq(listener_open_all(&second, &again, 1, 16, 0660, err, sizeof err), -1);
    ck_assert_msg(strstr(err, taken) != NULL, "message '%s' does not name %s", err, taken);
    ck_assert_msg(strstr(err, "in use") != NULL, "message '%s' does not say 'in use'", err);
    ck_assert_uint_eq(second.count, 0);
    listener_close_all(&first);
}
END_TEST

START_TEST(test_open_failure_closes_the_sockets_already_opened) {
    struct bind_address addresses[2] = {parse_ok("127.0.0.1:0"), parse_ok("unix:/nonexistent-dir/app.sock")};
    struct listener_set set = {0};
    char err[512] = "";
    ck_assert_int_eq(listener_open_all(&set, addresses, 2, 16, 0660, err, sizeof err), -1);
    ck_assert_uint_eq(set.count, 0);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent-dir/app.sock"));
}
END_TEST

START_TEST(test_open_unix_socket_with_the_requested_mode) {
    char text[300];
    snprintf(text, sizeof text, "unix:%s/app.sock", scratch);
    struct bind_address address = parse_ok(text);
    const unsigned modes[] = {0660, 0600, 0666};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        struct listener_set set = {0};
        char err[512] = "";
        ck_assert_msg(listener_open_all(&set, &address, 1, 16, modes[i], err, sizeof err) == 0, "%s", err);
        struct stat st;
        ck_assert_int_eq(stat(text + 5, &st), 0);
        ck_assert(S_ISSOCK(st.st_mode));
        ck_assert_uint_eq(st.st_mode & 0777, modes[i]);
        ck_assert_str_eq(set.items[0].name, text);
        listener_close_all(&set);
        ck_assert_int_eq(access(text + 5, F_OK), -1); /* our own socket file is removed */
    }
}
END_TEST

START_TEST(test_open_unix_replaces_a_stale_socket_file) {
    char text[300];
    snprintf(text, sizeof text, "unix:%s/stale.sock", scratch);
    struct bind_address address = parse_ok(text);
    /* a socket file whose process is gone: bound, never unlinked, closed */
    int dead = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_ge(dead, 0);
    ck_assert_int_eq(bind(dead, (const struct sockaddr *)&address.addr, address.addr_len), 0);
    close(dead);
    ck_assert_int_eq(access(text + 5, F_OK), 0);

    struct listener_set set = {0};
    char err[512] = "";
    ck_assert_msg(listener_open_all(&set, &address, 1, 16, 0660, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(listener_check_fd(set.items[0].fd, err, sizeof err), 0);
    listener_close_all(&set);
}
END_TEST

START_TEST(test_open_unix_in_use_by_a_live_socket_is_refused) {
    char text[300];
    snprintf(text, sizeof text, "unix:%s/live.sock", scratch);
    struct bind_address address = parse_ok(text);
    struct listener_set first = {0}, second = {0};
    char err[512] = "";
    ck_assert_msg(listener_open_all(&first, &address, 1, 16, 0660, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(listener_open_all(&second, &address, 1, 16, 0660, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, text));
    ck_assert_ptr_nonnull(strstr(err, "in use"));
    ck_assert_int_eq(access(text + 5, F_OK), 0); /* the live server keeps its socket file */
    listener_close_all(&first);
}
END_TEST

START_TEST(test_open_unix_over_a_regular_file_is_refused) {
    char path[300], text[310];
    scratch_file_write(scratch, "not-a-socket", "data\n", path, sizeof path);
    snprintf(text, sizeof text, "unix:%s", path);
    struct bind_address address = parse_ok(text);
    struct listener_set set = {0};
    char err[512] = "";
    ck_assert_int_eq(listener_open_all(&set, &address, 1, 16, 0660, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "not a socket"));
    ck_assert_int_eq(access(path, F_OK), 0); /* never deleted */
}
END_TEST

START_TEST(test_open_inherited_fd_is_adopted_not_unlinked) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&any, sizeof any), 0);
    ck_assert_int_eq(listen(fd, 4), 0);
    char text[32];
    snprintf(text, sizeof text, "fd://%d", fd);
    struct bind_address address = parse_ok(text);
    struct listener_set set = {0};
    char err[512] = "";
    ck_assert_msg(listener_open_all(&set, &address, 1, 16, 0660, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(set.items[0].fd, fd);
    ck_assert(set.items[0].adopted);
    listener_close_all(&set);
}
END_TEST

START_TEST(test_close_for_stop_refuses_clients_but_keeps_systemd_sockets_and_socket_files) {
    char text[300];
    snprintf(text, sizeof text, "unix:%s/app.sock", scratch);
    struct bind_address addresses[2] = {parse_ok("127.0.0.1:0"), parse_ok(text)};
    struct listener_set set = {0};
    char err[512] = "";
    ck_assert_msg(listener_open_all(&set, addresses, 2, 16, 0660, err, sizeof err) == 0, "%s", err);
    int systemd_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in loopback = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(systemd_fd, (struct sockaddr *)&loopback, sizeof loopback), 0);
    ck_assert_int_eq(listen(systemd_fd, 4), 0);
    ck_assert_msg(listener_adopt(&set, systemd_fd, "systemd:web", err, sizeof err) == 0, "%s", err);
    set.items[2].from_systemd = true; /* as listener_adopt_systemd marks the fds 3.. it adopts */

    listener_close_for_stop(&set);
    ck_assert_int_eq(set.items[0].fd, -1);
    ck_assert_int_eq(set.items[1].fd, -1);
    ck_assert_int_eq(set.items[2].fd, systemd_fd);
    ck_assert_int_eq(listener_check_fd(systemd_fd, err, sizeof err), 0);
    /* the socket file stays (a client gets ECONNREFUSED, not ENOENT) until listener_close_all */
    int client = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_eq(connect(client, (const struct sockaddr *)&addresses[1].addr, addresses[1].addr_len), -1);
    ck_assert_int_eq(errno, ECONNREFUSED);
    close(client);
    listener_close_all(&set);
    ck_assert_int_eq(access(text + 5, F_OK), -1);
}
END_TEST

START_TEST(test_check_fd_accepts_a_listening_socket) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un unnamed = {.sun_family = AF_UNIX};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&unnamed, sizeof(sa_family_t)), 0); /* autobind */
    ck_assert_int_eq(listen(fd, 4), 0);
    char err[256] = "";
    ck_assert_msg(listener_check_fd(fd, err, sizeof err) == 0, "%s", err);
    close(fd);
}
END_TEST

START_TEST(test_check_fd_rejects_a_socket_that_is_not_listening) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char err[256] = "";
    ck_assert_int_eq(listener_check_fd(fd, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "not listening"));
    close(fd);
}
END_TEST

START_TEST(test_check_fd_rejects_a_datagram_socket) {
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    char err[256] = "";
    ck_assert_int_eq(listener_check_fd(fd, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "not a stream"));
    close(fd);
}
END_TEST

START_TEST(test_check_fd_rejects_a_pipe) {
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    char err[256] = "";
    ck_assert_int_eq(listener_check_fd(fds[0], err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "not a socket"));
    close(fds[0]);
    close(fds[1]);
}
END_TEST

START_TEST(test_check_fd_rejects_a_closed_fd) {
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    close(fds[0]);
    close(fds[1]);
    char err[256] = "";
    ck_assert_int_eq(listener_check_fd(fds[0], err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "not open"));
}
END_TEST

START_TEST(test_a_stored_listener_is_reused_for_its_address_and_others_bind_anew) {
    struct bind_address first, second;
    char err[256];
    ck_assert_int_eq(listener_parse_address("127.0.0.1:0", &first, err, sizeof err), 0);
    struct listener_set kept = {0};
    ck_assert_int_eq(listener_open_all(&kept, &first, 1, 16, 0660, err, sizeof err), 0);
    /* The kernel chose a port: the address to match is what the stored socket is bound to. */
    struct sockaddr_storage bound;
    socklen_t length = sizeof bound;
    ck_assert_int_eq(getsockname(kept.items[0].fd, (struct sockaddr *)&bound, &length), 0);
    memcpy(&first.addr, &bound, length);
    ck_assert(listener_fd_matches(kept.items[0].fd, &first));
    ck_assert_int_eq(listener_parse_address("127.0.0.1:0", &second, err, sizeof err), 0);
    ck_assert(!listener_fd_matches(kept.items[0].fd, &second));

    int stored[1] = {dup(kept.items[0].fd)};
    struct bind_address both[2] = {second, first};
    struct listener_set set = {0};
    ck_assert_int_eq(listener_open_all_reusing(&set, both, 2, stored, 1, 16, 0660, err, sizeof err), 0);
    ck_assert_int_eq(stored[0], -1); /* taken */
    ck_assert_uint_eq(set.count, 2);
    ck_assert(listener_fd_matches(set.items[1].fd, &first));
    ck_assert(set.items[1].adopted);
    listener_close_all(&set);
    listener_close_all(&kept);
}
END_TEST

Suite *listener_suite(void) {
    Suite *suite = suite_create("listener");
    TCase *store = tcase_create("fd store");
    tcase_add_test(store, test_a_stored_listener_is_reused_for_its_address_and_others_bind_anew);
    suite_add_tcase(suite, store);
    TCase *parse = tcase_create("parse");
    tcase_add_test(parse, test_parse_ipv4_host_and_port);
    tcase_add_test(parse, test_parse_port_alone_means_every_ipv4_interface);
    tcase_add_test(parse, test_parse_bracketed_ipv6);
    tcase_add_test(parse, test_parse_host_name_resolves_to_loopback);
    tcase_add_test(parse, test_parse_unix_path);
    tcase_add_test(parse, test_parse_inherited_fd);
    tcase_add_test(parse, test_parse_address_without_port_is_refused);
    tcase_add_test(parse, test_parse_port_above_65535_is_refused);
    tcase_add_test(parse, test_parse_port_that_is_not_a_number_is_refused);
    tcase_add_test(parse, test_parse_ipv6_without_brackets_is_refused);
    tcase_add_test(parse, test_parse_ipv6_without_port_is_refused);
    tcase_add_test(parse, test_parse_unix_without_path_is_refused);
    tcase_add_test(parse, test_parse_unix_path_longer_than_sun_path_is_refused);
    tcase_add_test(parse, test_parse_fd_that_is_not_a_number_is_refused);
    tcase_add_test(parse, test_parse_empty_address_is_refused);
    tcase_add_test(parse, test_parse_overlong_address_is_refused);
    tcase_add_test(parse, test_parse_unresolvable_host_is_refused);
    suite_add_tcase(suite, parse);

    TCase *systemd = tcase_create("systemd");
    tcase_add_test(systemd, test_systemd_count_absent_is_zero);
    tcase_add_test(systemd, test_systemd_count_for_another_pid_is_zero);
    tcase_add_test(systemd, test_systemd_count_for_us);
    tcase_add_test(systemd, test_systemd_count_malformed_pid_is_an_error);
    tcase_add_test(systemd, test_systemd_count_malformed_fds_is_an_error);
    suite_add_tcase(suite, systemd);

    TCase *open = tcase_create("open");
    tcase_add_checked_fixture(open, scratch_setup, scratch_teardown);
    tcase_add_test(open, test_open_tcp_on_an_ephemeral_port);
    tcase_add_test(open, test_open_tcp_address_in_use_names_the_address);
    tcase_add_test(open, test_open_failure_closes_the_sockets_already_opened);
    tcase_add_test(open, test_open_unix_socket_with_the_requested_mode);
    tcase_add_test(open, test_open_unix_replaces_a_stale_socket_file);
    tcase_add_test(open, test_open_unix_in_use_by_a_live_socket_is_refused);
    tcase_add_test(open, test_open_unix_over_a_regular_file_is_refused);
    tcase_add_test(open, test_open_inherited_fd_is_adopted_not_unlinked);
    tcase_add_test(open, test_close_for_stop_refuses_clients_but_keeps_systemd_sockets_and_socket_files);
    tcase_add_test(open, test_check_fd_accepts_a_listening_socket);
    tcase_add_test(open, test_check_fd_rejects_a_socket_that_is_not_listening);
    tcase_add_test(open, test_check_fd_rejects_a_datagram_socket);
    tcase_add_test(open, test_check_fd_rejects_a_pipe);
    tcase_add_test(open, test_check_fd_rejects_a_closed_fd);
    suite_add_tcase(suite, open);
    return suite;
}
