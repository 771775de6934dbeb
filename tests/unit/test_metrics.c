/* test_metrics.c - the /metrics exposition format and the /healthz decision.
 *
 * The arbiter under test is a zeroed struct arbiter with just what rendering reads: a config, a
 * pool (no slots, or slots whose "workers" are stack structs), a state and the default loop for
 * uv_now. Per-worker samples use this test process's own pid, so /proc reads succeed. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "arbiter.h"
#include "metrics.h"
#include "metrics_page.h"
#include "status.h"
#include "procstat.h"
#include "unit.h"

/* ---- a minimal arbiter ---- */

struct fake_node {
    struct arbiter arbiter;
    struct config config;
    struct worker workers[4];
    struct slot slot_storage[4];
    struct slot *slots[4];
};

static void fake_node_init(struct fake_node *node, enum arbiter_state state, unsigned min_ready) {
    memset(node, 0, sizeof *node);
    node->config.min_ready = min_ready;
    node->arbiter.config = &node->config;
    node->arbiter.loop = uv_default_loop();
    node->arbiter.state = state;
    node->arbiter.pool.config = &node->config;
    node->arbiter.pool.loop = node->arbiter.loop;
    node->arbiter.pool.worker_env = (struct worker_env){.loop = node->arbiter.loop, .config = &node->config};
    node->arbiter.pool.slots = node->slots;
    struct arbiter *a = &node->arbiter;
    a->sources = (struct status_sources){.loop = a->loop, .config = &node->config, .state = &a->state,
                                         .started_ms = &a->started_ms, .pool = &a->pool, .board = &a->board,
                                         .listeners = &a->listeners, .upgrade = &a->upgrade, .reaper = &a->reaper};
}

/* Adds a slot whose active worker is in `state` (pid: this process, so /proc has it). */
static void fake_node_add_worker(struct fake_node *node, enum worker_state state) {
    size_t i = node->arbiter.pool.slot_count;
    ck_assert_uint_lt(i, 4);
    struct worker *w = &node->workers[i];
    struct slot *s = &node->slot_storage[i];
    w->env = &node->arbiter.pool.worker_env;
    w->slot = s;
    w->slot_id = (unsigned)i + 1;
    w->state = state;
    w->pid = (int)getpid();
    w->requests = 10 * (i + 1);
    w->in_flight = i;
    ck_assert_int_eq(procstat_read(w->pid, &w->stats), 0); /* the cached /proc figures the arbiter keeps */
    w->stats_ms = 1;
    s->pool = &node->arbiter.pool;
    s->id = (unsigned)i + 1;
    s->active = w;
    node->slots[i] = s;
    node->arbiter.pool.slot_count = i + 1;
    node->arbiter.pool.target = (unsigned)i + 1;
}

static char *render(struct arbiter *arbiter) {
    struct text_buffer out = {.limit = 1u << 20};
    metrics_render(&arbiter->sources, &arbiter->autoscale, &out);
    ck_assert(!out.truncated);
    ck_assert_ptr_nonnull(out.data);
    char *text = strndup(out.data, out.length);
    text_buffer_free(&out);
    return text;
}

static char *escaped(const char *value) {
    struct text_buffer out = {.limit = 4096};
    text_buffer_printf(&out, "%s", ""); /* an empty value still gives a (empty) string */
    text_buffer_escape_label(&out, value);
    char *text = strndup(out.data, out.length);
    text_buffer_free(&out);
    return text;
}

/* ---- label escaping ---- */

START_TEST(test_escape_label_backslash_quote_and_newline) {
    char *text = escaped("a\\b\"c\nd");
    ck_assert_str_eq(text, "a\\\\b\\\"c\\nd");
    free(text);
}
END_TEST

START_TEST(test_escape_label_plain_text_is_unchanged) {
    char *text = escaped("127.0.0.1:8000 unix:/run/app.sock [::1]:80");
    ck_assert_str_eq(text, "127.0.0.1:8000 unix:/run/app.sock [::1]:80");
    free(text);
}
END_TEST

START_TEST(test_escape_label_empty_value_is_empty) {
    char *text = escaped("");
    ck_assert_str_eq(text, "");
    free(text);
}
END_TEST

START_TEST(test_escape_label_other_control_characters_pass_through) {
    /* The text format escapes only \\, \" and \n in label values; a tab is legal as is. */
    char *text = escaped("a\tb");
    ck_assert_str_eq(text, "a\tb");
    free(text);
}
END_TEST

/* ---- text buffer ---- */

START_TEST(test_text_buffer_grows_past_its_first_allocation) {
    struct text_buffer b = {.limit = 1u << 20};
    char chunk[1001];
    memset(chunk, 'x', 1000);
    chunk[1000] = '\0';
    for (int i = 0; i < 100; i++) /* 100 kB: several doublings from the first 16 kB */
        text_buffer_printf(&b, "%s", chunk);
    ck_assert(!b.truncated);
    ck_assert_uint_eq(b.length, 100000);
    ck_assert_uint_ge(b.capacity, b.length + 1);
    ck_assert_uint_le(b.capacity, b.limit);
    for (size_t i = 0; i < b.length; i++)
        ck_assert_int_eq(b.data[i], 'x');
    ck_assert_int_eq(b.data[b.length], '\0');
    text_buffer_free(&b);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.length, 0);
}
END_TEST

START_TEST(test_text_buffer_formats_like_printf) {
    struct text_buffer b = {.limit = 4096};
    text_buffer_printf(&b, "%s %u %.2f", "workers", 4u, 1.5);
    text_buffer_printf(&b, "|%d", -7);
    ck_assert_str_eq(b.data, "workers 4 1.50|-7");
    text_buffer_free(&b);
}
END_TEST

START_TEST(test_text_buffer_stops_at_its_limit_and_says_truncated) {
    struct text_buffer b = {.limit = 20000};
    char chunk[1001];
    memset(chunk, 'y', 1000);
    chunk[1000] = '\0';
    for (int i = 0; i < 30; i++)
        text_buffer_printf(&b, "%s", chunk);
    ck_assert(b.truncated);
    ck_assert_uint_le(b.capacity, 20000);
    ck_assert_uint_lt(b.length, 20000);
    ck_assert_uint_eq(b.length % 1000, 0); /* whole writes only: a write that does not fit is dropped */
    size_t length = b.length;
    text_buffer_printf(&b, "z"); /* once truncated, always truncated: nothing more is appended */
    ck_assert_uint_eq(b.length, length);
    ck_assert(b.truncated);
    text_buffer_free(&b);
}
END_TEST

START_TEST(test_text_buffer_single_write_over_the_limit_is_truncated) {
    struct text_buffer b = {.limit = 100};
    char big[201];
    memset(big, 'q', 200);
    big[200] = '\0';
    text_buffer_printf(&b, "%s", big);
    ck_assert(b.truncated);
    ck_assert_uint_eq(b.length, 0);
    text_buffer_free(&b);
}
END_TEST

/* ---- health ---- */

START_TEST(test_health_is_503_while_stopping) {
    struct fake_node node;
    fake_node_init(&node, ARBITER_STOPPING, 1);
    fake_node_add_worker(&node, WORKER_READY);
    fake_node_add_worker(&node, WORKER_READY);
    char reason[192];
    ck_assert_int_eq(status_health(&node.arbiter.sources, reason, sizeof reason), 503);
    ck_assert_ptr_nonnull(strstr(reason, "stopping"));
}
END_TEST

START_TEST(test_health_is_503_while_stopping_even_with_min_ready_zero) {
    struct fake_node node;
    fake_node_init(&node, ARBITER_STOPPING, 0);
    char reason[192];
    ck_assert_int_eq(status_health(&node.arbiter.sources, reason, sizeof reason), 503);
}
END_TEST

START_TEST(test_health_is_503_with_a_reason_when_fewer_than_min_ready) {
    struct fake_node node;
    fake_node_init(&node, ARBITER_RUNNING, 2);
    fake_node_add_worker(&node, WORKER_READY);
    fake_node_add_worker(&node, WORKER_BOOTING);
    char reason[192];
    ck_assert_int_eq(status_health(&node.arbiter.sources, reason, sizeof reason), 503);
    ck_assert_msg(strstr(reason, "1/2") && strstr(reason, "min-ready"), "reason should say 1/2 ready and name --min-ready: %s",
                  reason);
}
END_TEST

START_TEST(test_health_is_503_with_no_slots_and_min_ready_one) {
    struct fake_node node;
    fake_node_init(&node, ARBITER_RUNNING, 1);
    char reason[192];
    ck_assert_int_eq(status_health(&node.arbiter.sources, reason, sizeof reason), 503);
    ck_assert_ptr_nonnull(strstr(reason, "0/0"));
}
END_TEST

START_TEST(test_health_is_200_when_enough_workers_are_ready) {
    struct fake_node node;
    fake_node_init(&node, ARBITER_RUNNING, 2);
    fake_node_add_worker(&node, WORKER_READY);
    fake_node_add_worker(&node, WORKER_READY);
    fake_node_add_worker(&node, WORKER_BOOTING);
    char reason[192];
    ck_assert_int_eq(status_health(&node.arbiter.sources, reason, sizeof reason), 200);
    ck_assert_ptr_nonnull(strstr(reason, "2/3"));
}
END_TEST

START_TEST(test_health_is_200_with_no_slots_and_min_ready_zero) {
    struct fake_node node;
    fake_node_init(&node, ARBITER_RUNNING, 0);
    char reason[192];
    ck_assert_int_eq(status_health(&node.arbiter.sources, reason, sizeof reason), 200);
}
END_TEST

START_TEST(test_health_is_200_while_reloading_with_enough_ready) {
    /* A rolling reload keeps serving: only a stop makes the node a lame duck. */
    struct fake_node node;
    fake_node_init(&node, ARBITER_RUNNING, 1);
    node.arbiter.pool.reload.state = RELOAD_RUNNING;
    fake_node_add_worker(&node, WORKER_READY);
    char reason[192];
    ck_assert_int_eq(status_health(&node.arbiter.sources, reason, sizeof reason), 200);
}
END_TEST

START_TEST(test_health_reason_fits_a_small_buffer) {
    struct fake_node node;
    fake_node_init(&node, ARBITER_RUNNING, 5);
    char reason[8];
    memset(reason, '#', sizeof reason);
    ck_assert_int_eq(status_health(&node.arbiter.sources, reason, sizeof reason), 503);
    ck_assert_uint_lt(strnlen(reason, sizeof reason), sizeof reason);
}
END_TEST

/* ---- exposition format ---- */

/* Walks the page line by line and checks the text format's rules as Prometheus reads them:
 * every sample belongs to the family announced by the last # TYPE, that # TYPE comes right after
 * its # HELP, every name starts with arbiter_, counters end in _total, a family appears once. */
static void check_exposition(const char *page) {
    char family[128] = "", pending_help[128] = "", type[16] = "";
    char seen[64][128];
    size_t seen_count = 0, samples = 0;
    const char *line = page;
    ck_assert_msg(*page != '\0', "empty page");
    ck_assert_msg(page[strlen(page) - 1] == '\n', "the page must end with a newline");
    while (*line) {
        const char *end = strchr(line, '\n');
        ck_assert_ptr_nonnull(end);
        char text[1024];
        size_t length = (size_t)(end - line);
        ck_assert_uint_lt(length, sizeof text);
        memcpy(text, line, length);
        text[length] = '\0';
        line = end + 1;

        char name[128], value[64];
        if (strncmp(text, "# HELP ", 7) == 0) {
            ck_assert_int_eq(sscanf(text, "# HELP %127s", name), 1);
            ck_assert_msg(pending_help[0] == '\0', "# HELP %s is not followed by its # TYPE", pending_help);
            ck_assert_msg(strlen(text) > 8 + strlen(name), "# HELP %s has no text", name);
            snprintf(pending_help, sizeof pending_help, "%s", name);
        } else if (strncmp(text, "# TYPE ", 7) == 0) {
            ck_assert_int_eq(sscanf(text, "# TYPE %127s %15s", name, type), 2);
            ck_assert_msg(strcmp(pending_help, name) == 0, "# TYPE %s is not right after its # HELP", name);
            ck_assert_msg(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0, "%s: unexpected type %s", name, type);
            ck_assert_msg(strncmp(name, "arbiter_", 8) == 0, "%s is not prefixed arbiter_", name);
            size_t n = strlen(name);
            if (strcmp(type, "counter") == 0)
                ck_assert_msg(n > 6 && strcmp(name + n - 6, "_total") == 0, "counter %s does not end in _total", name);
            else
                ck_assert_msg(n <= 6 || strcmp(name + n - 6, "_total") != 0, "gauge %s ends in _total", name);
            for (size_t i = 0; i < seen_count; i++)
                ck_assert_msg(strcmp(seen[i], name) != 0, "family %s appears twice", name);
            ck_assert_uint_lt(seen_count, 64);
            snprintf(seen[seen_count++], sizeof seen[0], "%s", name);
            snprintf(family, sizeof family, "%s", name);
            pending_help[0] = '\0';
        } else {
            ck_assert_msg(text[0] != '#', "unexpected comment: %s", text);
            ck_assert_msg(pending_help[0] == '\0', "sample after # HELP %s without # TYPE", pending_help);
            size_t n = strcspn(text, "{ ");
            ck_assert_uint_lt(n, sizeof name);
            memcpy(name, text, n);
            name[n] = '\0';
            ck_assert_msg(family[0] != '\0', "sample %s before any # TYPE", name);
            ck_assert_msg(strcmp(name, family) == 0, "sample %s is outside its family (under # TYPE %s)", name, family);
            const char *rest = text + n;
            if (*rest == '{') {
                const char *close = strstr(rest, "} ");
                ck_assert_msg(close != NULL, "labels of %s are not closed: %s", name, text);
                rest = close + 1;
            }
            ck_assert_int_eq(sscanf(rest, " %63s", value), 1);
            char *parsed_end;
            strtod(value, &parsed_end);
            ck_assert_msg(*parsed_end == '\0', "%s: value %s is not a number", name, value);
            samples++;
        }
    }
    ck_assert_msg(pending_help[0] == '\0', "the page ends after # HELP %s", pending_help);
    ck_assert_uint_gt(samples, 0);
}

static bool has_line(const char *page, const char *wanted) {
    size_t n = strlen(wanted);
    for (const char *p = page; (p = strstr(p, wanted)) != NULL; p += n)
        if ((p == page || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

START_TEST(test_render_of_an_empty_pool_follows_the_text_format) {
    struct fake_node node;
    fake_node_init(&node, ARBITER_RUNNING, 1);
    char *page = render(&node.arbiter);
    check_exposition(page);
    ck_assert(has_line(page, "arbiter_target_workers 0"));
    ck_assert(has_line(page, "arbiter_workers{state=\"ready\"} 0"));
    ck_assert(has_line(page, "arbiter_stopping 0"));
    free(page);
}
END_TEST

START_TEST(test_render_with_workers_and_a_listener_follows_the_text_format) {
    struct fake_node node;
    fake_node_init(&node, ARBITER_RUNNING, 1);
    fake_node_add_worker(&node, WORKER_READY);
    fake_node_add_worker(&node, WORKER_READY);
    fake_node_add_worker(&node, WORKER_BOOTING);
    node.arbiter.pool.requests_of_exited = 5;

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&address, sizeof address), 0);
    ck_assert_int_eq(listen(fd, 17), 0);
    node.arbiter.listeners.count = 1;
    node.arbiter.listeners.items[0].fd = fd;
    snprintf(node.arbiter.listeners.items[0].name, sizeof node.arbiter.listeners.items[0].name, "127.0.0.1:\"odd\"");

    char *page = render(&node.arbiter);
    close(fd);
    check_exposition(page);
    ck_assert(has_line(page, "arbiter_target_workers 3"));
    ck_assert(has_line(page, "arbiter_workers{state=\"ready\"} 2"));
    ck_assert(has_line(page, "arbiter_workers{state=\"booting\"} 1"));
    ck_assert(has_line(page, "arbiter_requests_total 65")); /* 10 + 20 + 30 + 5 of exited workers */
    ck_assert(has_line(page, "arbiter_requests_in_flight 3"));
    char wanted[128];
    snprintf(wanted, sizeof wanted, "arbiter_worker_requests_total{worker=\"2\",pid=\"%d\"} 20", (int)getpid());
    ck_assert_msg(has_line(page, wanted), "missing %s", wanted);
    /* The listener's name is escaped in its label; its backlog is the queue maximum. */
    ck_assert(has_line(page, "arbiter_listen_queue_length{listener=\"127.0.0.1:\\\"odd\\\"\"} 0"));
    ck_assert(has_line(page, "arbiter_listen_queue_max{listener=\"127.0.0.1:\\\"odd\\\"\"} 17"));
    free(page);
}
END_TEST

START_TEST(test_render_says_stopping_while_stopping) {
    struct fake_node node;
    fake_node_init(&node, ARBITER_STOPPING, 1);
    char *page = render(&node.arbiter);
    ck_assert(has_line(page, "arbiter_stopping 1"));
    free(page);
}
END_TEST

START_TEST(test_render_per_worker_labels_are_worker_then_pid) {
    struct fake_node node;
    fake_node_init(&node, ARBITER_RUNNING, 1);
    fake_node_add_worker(&node, WORKER_READY);
    char *page = render(&node.arbiter);
    unsigned checked = 0;
    for (const char *p = page; (p = strstr(p, "arbiter_worker_")) != NULL; p++) {
        if (p != page && p[-1] != '\n')
            continue; /* inside a comment line */
        const char *brace = strchr(p, '{'), *eol = strchr(p, '\n');
        if (!brace || brace > eol || strncmp(p, "arbiter_worker_exits_total", 26) == 0)
            continue; /* not a per-worker series */
        ck_assert_msg(strncmp(brace, "{worker=\"", 9) == 0, "labels out of order: %.*s", (int)(eol - p), p);
        ck_assert_ptr_nonnull(strstr(brace, "\",pid=\""));
        checked++;
    }
    ck_assert_uint_ge(checked, 6); /* one series in each per-worker family */
    free(page);
}
END_TEST

Suite *metrics_suite(void) {
    Suite *suite = suite_create("metrics");
    TCase *escape = tcase_create("escape");
    tcase_add_test(escape, test_escape_label_backslash_quote_and_newline);
    tcase_add_test(escape, test_escape_label_plain_text_is_unchanged);
    tcase_add_test(escape, test_escape_label_empty_value_is_empty);
    tcase_add_test(escape, test_escape_label_other_control_characters_pass_through);
    suite_add_tcase(suite, escape);

    TCase *buffer = tcase_create("text_buffer");
    tcase_add_test(buffer, test_text_buffer_grows_past_its_first_allocation);
    tcase_add_test(buffer, test_text_buffer_formats_like_printf);
    tcase_add_test(buffer, test_text_buffer_stops_at_its_limit_and_says_truncated);
    tcase_add_test(buffer, test_text_buffer_single_write_over_the_limit_is_truncated);
    suite_add_tcase(suite, buffer);

    TCase *health = tcase_create("health");
    tcase_add_test(health, test_health_is_503_while_stopping);
    tcase_add_test(health, test_health_is_503_while_stopping_even_with_min_ready_zero);
    tcase_add_test(health, test_health_is_503_with_a_reason_when_fewer_than_min_ready);
    tcase_add_test(health, test_health_is_503_with_no_slots_and_min_ready_one);
    tcase_add_test(health, test_health_is_200_when_enough_workers_are_ready);
    tcase_add_test(health, test_health_is_200_with_no_slots_and_min_ready_zero);
    tcase_add_test(health, test_health_is_200_while_reloading_with_enough_ready);
    tcase_add_test(health, test_health_reason_fits_a_small_buffer);
    suite_add_tcase(suite, health);

    TCase *render_case = tcase_create("render");
    tcase_add_test(render_case, test_render_of_an_empty_pool_follows_the_text_format);
    tcase_add_test(render_case, test_render_with_workers_and_a_listener_follows_the_text_format);
    tcase_add_test(render_case, test_render_says_stopping_while_stopping);
    tcase_add_test(render_case, test_render_per_worker_labels_are_worker_then_pid);
    suite_add_tcase(suite, render_case);
    return suite;
}
