/* test_autoscale.c - the autoscaling decision (a pure function), its flags, and the board.
 *
 * autoscale_decide gets the policy, its trend and one sample at a time with an explicit clock, so
 * each test plays a load history sample by sample (every AUTOSCALE_TICK_MS, as the arbiter does)
 * and checks what was decided and when. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "autoscale.h"
#include "board.h"
#include "config.h"
#include "control.h"
#include "unit.h"

#define MiB (1024ull * 1024ull)

static struct autoscale_policy policy(unsigned min, unsigned max) {
    return (struct autoscale_policy){.enabled = true, .min = min, .max = max, .up_after_s = 1, .idle_s = 60,
                                     .queue = 1, .busy = 0.9, .lag_s = 0.05};
}

static struct autoscale_signals calm(unsigned workers) {
    return (struct autoscale_signals){.target = workers, .ready = workers, .settled = true, .busy = 0.1,
                                      .lag_s = 0.002, .memory = workers * 50 * MiB, .worker_memory = 50 * MiB};
}

/* Feeds the same sample every tick from *now for `seconds`; returns the first decision that is not
 * HOLD (or the last HOLD), and leaves *now at the time of that decision. */
static struct autoscale_decision play(const struct autoscale_policy *p, struct autoscale_trend *t,
                                      struct autoscale_signals s, uint64_t *now, double seconds) {
    struct autoscale_decision d = {0};
    for (uint64_t end = *now + (uint64_t)(seconds * 1000); *now <= end; *now += AUTOSCALE_TICK_MS) {
        d = autoscale_decide(p, t, &s, *now);
        if (d.action != AUTOSCALE_HOLD)
            return d;
    }
    return d;
}

START_TEST(test_steady_low_load_holds) {
    struct autoscale_policy p = policy(1, 8);
    struct autoscale_trend t = {0};
    uint64_t now = 1000;
    struct autoscale_decision d = play(&p, &t, calm(1), &now, 120);
    ck_assert_int_eq(d.action, AUTOSCALE_HOLD); /* at MIN: low load removes nothing */
}
END_TEST

START_TEST(test_queued_connections_scale_up_within_about_a_second) {
    struct autoscale_policy p = policy(1, 8);
    struct autoscale_trend t = {0};
    uint64_t now = 1000;
    play(&p, &t, calm(2), &now, 5);
    struct autoscale_signals s = calm(2);
    s.queue = 20;
    uint64_t began = now;
    struct autoscale_decision d = play(&p, &t, s, &now, 5);
    ck_assert_int_eq(d.action, AUTOSCALE_UP);
    ck_assert_int_eq(d.reason, AUTOSCALE_REASON_QUEUE);
    ck_assert_uint_eq(d.from, 2);
    ck_assert_uint_eq(d.to, 3);
    ck_assert(d.report);
    ck_assert_uint_le(now - began, 1500);
}
END_TEST

START_TEST(test_busy_workers_scale_up) {
    struct autoscale_policy p = policy(1, 8);
    struct autoscale_trend t = {0};
    uint64_t now = 1000;
    play(&p, &t, calm(4), &now, 5);
    struct autoscale_signals s = calm(4);
    s.busy = 1.0;
    struct autoscale_decision d = play(&p, &t, s, &now, 5);
    ck_assert_int_eq(d.action, AUTOSCALE_UP);
    ck_assert_int_eq(d.reason, AUTOSCALE_REASON_BUSY);
    ck_assert_uint_eq(d.to, 6); /* grows by half */
}
END_TEST

START_TEST(test_event_loop_lag_scales_up) {
    struct autoscale_policy p = policy(1, 8);
    struct autoscale_trend t = {0};
    uint64_t now = 1000;
    play(&p, &t, calm(1), &now, 5);
    struct autoscale_signals s = calm(1);
    s.lag_s = 0.2;
    struct autoscale_decision d = play(&p, &t, s, &now, 5);
    ck_assert_int_eq(d.action, AUTOSCALE_UP);
    ck_assert_int_eq(d.reason, AUTOSCALE_REASON_LAG);
    ck_assert_uint_eq(d.to, 2);
}
END_TEST

START_TEST(test_a_short_blip_does_not_scale_up) {
    struct autoscale_policy p = policy(1, 8);
    struct autoscale_trend t = {0};
    uint64_t now = 1000;
    play(&p, &t, calm(2), &now, 5);
    struct autoscale_signals spike = calm(2);
    spike.lag_s = 0.08; /* one late tick of 80 ms */
    struct autoscale_decision d = play(&p, &t, spike, &now, 0);
    ck_assert_int_eq(d.action, AUTOSCALE_HOLD);
    d = play(&p, &t, calm(2), &now, 10);
    ck_assert_int_eq(d.action, AUTOSCALE_HOLD);
}
END_TEST

START_TEST(test_a_burst_of_connections_does_not_scale_up) {
    struct autoscale_policy p = policy(1, 8);
    struct autoscale_trend t = {0};
    uint64_t now = 1000;
    play(&p, &t, calm(2), &now, 5);
    struct autoscale_signals burst = calm(2);
    burst.queue = 64; /* a client opened 64 connections at once; accepted by the next sample */
    struct autoscale_decision d = play(&p, &t, burst, &now, 0);
    ck_assert_int_eq(d.action, AUTOSCALE_HOLD);
    ck_assert_double_gt(d.queue, 10); /* what status shows is the real average */
    d = play(&p, &t, calm(2), &now, 10);
    ck_assert_int_eq(d.action, AUTOSCALE_HOLD);
}
END_TEST

START_TEST(test_no_decision_while_workers_boot) {
    struct autoscale_policy p = policy(1, 8);
    struct autoscale_trend t = {0};
    uint64_t now = 1000;
    struct autoscale_signals s = calm(2);
    s.queue = 50;
    s.settled = false;
    struct autoscale_decision d = play(&p, &t, s, &now, 10);
    ck_assert_int_eq(d.action, AUTOSCALE_HOLD);
    /* Once settled, another up_after must pass before the next step is judged. */
    s.settled = true;
    uint64_t settled = now;
    d = play(&p, &t, s, &now, 5);
    ck_assert_int_eq(d.action, AUTOSCALE_UP);
    ck_assert_uint_ge(now - settled, 1000);
}
END_TEST

START_TEST(test_never_above_max_and_blocked_is_reported_once) {
    struct autoscale_policy p = policy(1, 3);
    struct autoscale_trend t = {0};
    uint64_t now = 1000;
    struct autoscale_signals s = calm(2);
    s.queue = 50;
    struct autoscale_decision d = play(&p, &t, s, &now, 5);
    ck_assert_int_eq(d.action, AUTOSCALE_UP);
    ck_assert_uint_eq(d.to, 3); /* +1 (half of 2), capped at MAX anyway */
    s.target = s.ready = 3;
    d = play(&p, &t, s, &now, 5);
    ck_assert_int_eq(d.action, AUTOSCALE_BLOCKED);
    ck_assert_int_eq(d.reason, AUTOSCALE_REASON_MAX);
    ck_assert(d.report);
    for (int i = 0; i < 40; i++) {
        now += AUTOSCALE_TICK_MS;
        d = autoscale_decide(&p, &t, &s, now);
        ck_assert_int_eq(d.action, AUTOSCALE_BLOCKED);
        ck_assert_uint_eq(d.to, 3);
        ck_assert(!d.report);
    }
}
END_TEST

START_TEST(test_memory_ceiling_limits_the_step_up) {
    struct autoscale_policy p = policy(1, 16);
    p.max_memory = 320 * MiB;
    struct autoscale_trend t = {0};
    uint64_t now = 1000;
    struct autoscale_signals s = calm(4); /* 4 x 50 MiB = 200 MiB: room for two more */
    s.queue = 50;
    struct autoscale_decision d = play(&p, &t, s, &now, 5);
    ck_assert_int_eq(d.action, AUTOSCALE_UP);
    ck_assert_uint_eq(d.to, 6);
    s = calm(6);
    s.queue = 50;
    s.memory = 300 * MiB;
    d = play(&p, &t, s, &now, 5);
    ck_assert_int_eq(d.action, AUTOSCALE_BLOCKED);
    ck_assert_int_eq(d.reason, AUTOSCALE_REASON_MEMORY);
    ck_assert_uint_eq(d.to, 6);
}
END_TEST

START_TEST(test_workers_that_grew_past_the_memory_ceiling_give_one_back) {
    struct autoscale_policy p = policy(2, 8);
    p.max_memory = 200 * MiB;
    struct autoscale_trend t = {0};
    uint64_t now = 1000;
    struct autoscale_signals s = calm(5);
    s.memory = 260 * MiB;
    struct autoscale_decision d = play(&p, &t, s, &now, 5);
    ck_assert_int_eq(d.action, AUTOSCALE_DOWN);
    ck_assert_int_eq(d.reason, AUTOSCALE_REASON_MEMORY);
    ck_assert_uint_eq(d.to, 4);
}
END_TEST

START_TEST(test_low_load_removes_one_worker_per_idle_period_down_to_min) {
    struct autoscale_policy p = policy(2, 8);
    p.idle_s = 10;
    struct autoscale_trend t = {0};
    uint64_t now = 1000;
    unsigned workers = 5;
    uint64_t previous = now;
    while (workers > 2) {
        struct autoscale_decision d = play(&p, &t, calm(workers), &now, 30);
        ck_assert_int_eq(d.action, AUTOSCALE_DOWN);
        ck_assert_int_eq(d.reason, AUTOSCALE_REASON_IDLE);
        ck_assert_uint_eq(d.to, workers - 1);
        ck_assert_uint_ge(now - previous, 10000);
        previous = now;
        workers--;
    }
    struct autoscale_decision d = play(&p, &t, calm(2), &now, 120);
    ck_assert_int_eq(d.action, AUTOSCALE_HOLD); /* never below MIN */
}
END_TEST

START_TEST(test_load_that_one_worker_fewer_could_not_carry_is_not_low) {
    struct autoscale_policy p = policy(1, 8);
    p.idle_s = 5;
    struct autoscale_trend t = {0};
    uint64_t now = 1000;
    struct autoscale_signals s = calm(2);
    s.busy = 0.5; /* one of two busy: with one worker it would be busy all the time */
    struct autoscale_decision d = play(&p, &t, s, &now, 60);
    ck_assert_int_eq(d.action, AUTOSCALE_HOLD);
}
END_TEST

START_TEST(test_new_bounds_move_the_count_at_once) {
    struct autoscale_policy p = policy(4, 8);
    struct autoscale_trend t = {0};
    struct autoscale_signals s = calm(2);
    struct autoscale_decision d = autoscale_decide(&p, &t, &s, 1000);
    ck_assert_int_eq(d.action, AUTOSCALE_UP);
    ck_assert_int_eq(d.reason, AUTOSCALE_REASON_BOUNDS);
    ck_assert_uint_eq(d.to, 4);
    p = policy(1, 3);
    s = calm(6);
    d = autoscale_decide(&p, &t, &s, 1250);
    ck_assert_int_eq(d.action, AUTOSCALE_DOWN);
    ck_assert_uint_eq(d.to, 3);
}
END_TEST

START_TEST(test_disabled_policy_only_tracks_the_signals) {
    struct autoscale_policy p = policy(1, 8);
    p.enabled = false;
    struct autoscale_trend t = {0};
    uint64_t now = 1000;
    struct autoscale_signals s = calm(1);
    s.queue = 100;
    struct autoscale_decision d = play(&p, &t, s, &now, 10);
    ck_assert_int_eq(d.action, AUTOSCALE_HOLD);
    ck_assert_double_gt(d.queue, 90);
}
END_TEST

/* ---- MIN:MAX ---- */

START_TEST(test_range_parsing) {
    unsigned min = 0, max = 0;
    char err[160];
    ck_assert_int_eq(autoscale_parse_range("2:8", 128, &min, &max, err, sizeof err), 0);
    ck_assert_uint_eq(min, 2);
    ck_assert_uint_eq(max, 8);
    ck_assert_int_eq(autoscale_parse_range("3:3", 128, &min, &max, err, sizeof err), 0);
    static const struct {
        const char *text, *message;
    } bad[] = {{"3:2", "MIN is more than MAX"}, {"0:4", "MIN must be at least 1"}, {"1:200", "more than 128"},
               {"4", "not MIN:MAX"}, {"a:b", "not MIN:MAX"}, {"2:", "not MIN:MAX"}, {":4", "not MIN:MAX"},
               {"-1:4", "not MIN:MAX"}, {"2:8x", "not MIN:MAX"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(autoscale_parse_range(bad[i].text, 128, &min, &max, err, sizeof err), -1);
        ck_assert_msg(strstr(err, bad[i].message), "'%s': message '%s' lacks '%s'", bad[i].text, err, bad[i].message);
    }
}
END_TEST

/* ---- the flags ---- */

static char *plain_env[] = {"PATH=/usr/bin:/bin", NULL};
#define ARGS(...) ((char *[]){__VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)))
#define PARSE(config, err, ...) config_parse(config, ARGC(__VA_ARGS__), ARGS(__VA_ARGS__), plain_env, err, sizeof err)

static void assert_refused(const char *expected, enum config_result result, struct config *config, const char *err) {
    ck_assert_int_eq(result, CONFIG_USAGE_ERROR);
    ck_assert_msg(strstr(err, expected), "message '%s' lacks '%s'", err, expected);
    config_free(config);
}

START_TEST(test_autoscale_flags_and_defaults) {
    struct config c;
    char err[CONFIG_ERROR_MAX] = "";
    ck_assert_int_eq(PARSE(&c, err, "run", "--python", "/usr/bin/python3", "--autoscale", "2:6", "app:app"), CONFIG_OK);
    ck_assert(c.autoscale.enabled);
    ck_assert_uint_eq(c.autoscale.min, 2);
    ck_assert_uint_eq(c.autoscale.max, 6);
    ck_assert_double_eq(c.autoscale.idle_s, 60);
    ck_assert_double_eq(c.autoscale.up_after_s, 1);
    ck_assert_double_eq(c.autoscale.busy, 0.9);
    ck_assert_double_eq_tol(c.autoscale.lag_s, 0.05, 1e-9);
    ck_assert_uint_ge(c.workers, 2); /* the CPU count, moved into 2..6 */
    ck_assert_uint_le(c.workers, 6);
    ck_assert_int_eq(c.balance, BALANCE_EVEN);
    config_free(&c);

    ck_assert_int_eq(PARSE(&c, err, "run", "--python", "/usr/bin/python3", "-w", "3", "--autoscale", "1:4",
                           "--autoscale-idle", "90s", "--autoscale-max-memory", "2G", "--autoscale-up-after", "500ms",
                           "--autoscale-queue", "8", "--autoscale-busy", "0.75", "--autoscale-lag", "20ms", "app:app"),
                     CONFIG_OK);
    ck_assert_uint_eq(c.workers, 3);
    ck_assert_double_eq(c.autoscale.idle_s, 90);
    ck_assert_uint_eq(c.autoscale.max_memory, 2048 * MiB);
    ck_assert_double_eq(c.autoscale.up_after_s, 0.5);
    ck_assert_double_eq(c.autoscale.queue, 8);
    ck_assert_double_eq(c.autoscale.busy, 0.75);
    ck_assert_double_eq_tol(c.autoscale.lag_s, 0.02, 1e-9);
    config_free(&c);

    ck_assert_int_eq(PARSE(&c, err, "run", "--python", "/usr/bin/python3", "--reuse-port", "app:app"), CONFIG_OK);
    ck_assert_int_eq(c.balance, BALANCE_KERNEL);
    config_free(&c);
    ck_assert_int_eq(PARSE(&c, err, "run", "--python", "/usr/bin/python3", "--balance", "kernel", "app:app"), CONFIG_OK);
    ck_assert_int_eq(c.balance, BALANCE_KERNEL);
    config_free(&c);
}
END_TEST

START_TEST(test_bad_autoscale_input_names_the_flag) {
    struct config c;
    char err[CONFIG_ERROR_MAX] = "";
    assert_refused("--autoscale: '4:2': MIN is more than MAX",
                   PARSE(&c, err, "run", "--python", "/usr/bin/python3", "--autoscale", "4:2", "app:app"), &c, err);
    assert_refused("--autoscale: '0:2': MIN must be at least 1",
                   PARSE(&c, err, "run", "--python", "/usr/bin/python3", "--autoscale", "0:2", "app:app"), &c, err);
    assert_refused("--autoscale 1:200: MAX is more than --max-workers 128",
                   PARSE(&c, err, "run", "--python", "/usr/bin/python3", "--autoscale", "1:200", "app:app"), &c, err);
    assert_refused("--autoscale 1:10: MAX is more than --max-workers 8",
                   PARSE(&c, err, "run", "--python", "/usr/bin/python3", "--max-workers", "8", "-w", "2", "--autoscale",
                         "1:10", "app:app"), &c, err);
    assert_refused("--workers 5 is outside --autoscale 1:4",
                   PARSE(&c, err, "run", "--python", "/usr/bin/python3", "-w", "5", "--autoscale", "1:4", "app:app"), &c, err);
    assert_refused("--autoscale-busy: '1.5' is not a number from 0.05 to 1",
                   PARSE(&c, err, "run", "--python", "/usr/bin/python3", "--autoscale-busy", "1.5", "app:app"), &c, err);
    assert_refused("--autoscale-idle", PARSE(&c, err, "run", "--python", "/usr/bin/python3", "--autoscale-idle", "soon", "app:app"),
                   &c, err);
    assert_refused("--balance: 'least-conn' is not one of even|kernel",
                   PARSE(&c, err, "run", "--python", "/usr/bin/python3", "--balance", "least-conn", "app:app"), &c, err);
    assert_refused("--balance even needs the shared socket",
                   PARSE(&c, err, "run", "--python", "/usr/bin/python3", "--balance", "even", "--reuse-port", "app:app"),
                   &c, err);
}
END_TEST

START_TEST(test_autoscale_keys_in_a_config_file) {
    char dir[256], path[512];
    scratch_dir_create(dir, sizeof dir);
    scratch_file_write(dir, "arbiter.json",
                       "{\"autoscale\": \"2:6\", \"autoscale-idle\": 30, \"autoscale-busy\": 0.8, \"balance\": \"kernel\"}",
                       path, sizeof path);
    struct config c;
    char err[CONFIG_ERROR_MAX] = "";
    ck_assert_msg(PARSE(&c, err, "run", "--python", "/usr/bin/python3", "--config", path, "app:app") == CONFIG_OK, "%s", err);
    ck_assert(c.autoscale.enabled);
    ck_assert_uint_eq(c.autoscale.min, 2);
    ck_assert_uint_eq(c.autoscale.max, 6);
    ck_assert_double_eq(c.autoscale.idle_s, 30);
    ck_assert_double_eq(c.autoscale.busy, 0.8);
    ck_assert_int_eq(c.balance, BALANCE_KERNEL);
    config_free(&c);
    scratch_dir_remove(dir);
}
END_TEST

START_TEST(test_check_ignores_autoscale) {
    struct config c;
    char err[CONFIG_ERROR_MAX] = "";
    ck_assert_int_eq(PARSE(&c, err, "check", "--python", "/usr/bin/python3", "--autoscale", "2:4", "app:app"), CONFIG_OK);
    ck_assert(!c.autoscale.enabled);
    ck_assert_uint_eq(c.workers, 1);
    config_free(&c);
}
END_TEST

/* ---- ctl autoscale ---- */

static int parse_request(const char *line, struct control_request *r, struct control_error *e) {
    return control_parse_request(line, strlen(line), r, e);
}

START_TEST(test_autoscale_requests) {
    struct control_request r;
    struct control_error e;
    ck_assert_int_eq(parse_request("{\"cmd\":\"autoscale\",\"min\":2,\"max\":8}", &r, &e), 0);
    ck_assert(r.has_range && !r.autoscale_off);
    ck_assert_int_eq(r.autoscale_min, 2);
    ck_assert_int_eq(r.autoscale_max, 8);
    ck_assert_int_eq(parse_request("{\"cmd\":\"autoscale\",\"enabled\":false}", &r, &e), 0);
    ck_assert(r.autoscale_off && !r.has_range);
    static const struct {
        const char *line, *code;
    } bad[] = {{"{\"cmd\":\"autoscale\"}", "invalid_argument"},
               {"{\"cmd\":\"autoscale\",\"min\":2}", "invalid_argument"},
               {"{\"cmd\":\"autoscale\",\"min\":2,\"max\":8,\"enabled\":false}", "invalid_argument"},
               {"{\"cmd\":\"autoscale\",\"min\":0,\"max\":8}", "out_of_range"},
               {"{\"cmd\":\"autoscale\",\"min\":9,\"max\":8}", "out_of_range"},
               {"{\"cmd\":\"autoscale\",\"min\":\"2\",\"max\":8}", "bad_request"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(parse_request(bad[i].line, &r, &e), -1);
        ck_assert_msg(strcmp(e.code, bad[i].code) == 0, "%s: %s, not %s", bad[i].line, e.code, bad[i].code);
    }
}
END_TEST

/* ---- the board ---- */

START_TEST(test_board_entries_are_claimed_zeroed_and_released) {
    struct board board;
    char err[256];
    ck_assert_int_eq(board_open(&board, 3, err, sizeof err), 0);
    const struct board_header *header = (const struct board_header *)board.entries;
    ck_assert_int_eq(header->magic, BOARD_MAGIC);
    ck_assert_int_eq(header->entries, 4);
    ck_assert_int_eq(header->entry_size, 64);
    unsigned a = board_claim(&board), b = board_claim(&board), c = board_claim(&board);
    ck_assert_uint_eq(a, 1);
    ck_assert_uint_eq(b, 2);
    ck_assert_uint_eq(c, 3);
    ck_assert_uint_eq(board_claim(&board), 0); /* full: a worker then runs without an entry */
    ck_assert_int_eq(header->in_use, 4);
    board_release(&board, c);
    ck_assert_int_eq(header->in_use, 3); /* readers scan entries 1..2 only */
    ck_assert_uint_eq(board_claim(&board), c);
    board.entries[b].connections = 17;
    board_release(&board, b);
    unsigned again = board_claim(&board);
    ck_assert_uint_eq(again, b);
    ck_assert_int_eq(board_get(&board, again)->connections, 0);
    ck_assert_ptr_null(board_get(&board, 0));
    /* What a worker sees through its own mapping of the memfd. */
    void *map = mmap(NULL, 4 * 64, PROT_READ | PROT_WRITE, MAP_SHARED, board.fd, 0);
    ck_assert_ptr_ne(map, MAP_FAILED);
    ((struct board_entry *)map)[a].in_flight = 5;
    ck_assert_int_eq(board_get(&board, a)->in_flight, 5);
    munmap(map, 4 * 64);
    board_close(&board);
    ck_assert_int_eq(board.fd, -1);
}
END_TEST

START_TEST(test_an_upgraded_arbiter_adopts_the_board_its_workers_have_mapped) {
    struct board old, adopted;
    char err[256];
    ck_assert_int_eq(board_open(&old, 4, err, sizeof err), 0);
    unsigned a = board_claim(&old), b = board_claim(&old);
    old.entries[b].connections = 9;
    int handed = dup(old.fd); /* what the new image finds after execve */
    ck_assert_int_eq(board_adopt(&adopted, handed, err, sizeof err), 0);
    ck_assert_uint_eq(adopted.count, 5);
    ck_assert_int_eq(board_get(&adopted, b)->connections, 9);
    board_mark_used(&adopted, a);
    board_mark_used(&adopted, b);
    ck_assert_uint_eq(board_claim(&adopted), 3); /* the adopted workers' entries stay theirs */
    board_close(&adopted);
    int not_a_board = memfd_create("not-a-board", MFD_CLOEXEC);
    ck_assert_int_eq(ftruncate(not_a_board, 4096), 0);
    ck_assert_int_eq(board_adopt(&adopted, not_a_board, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "is not a version 1 board"), "%s", err);
    board_close(&old);
}
END_TEST

START_TEST(test_board_lag_counts_an_overdue_tick) {
    struct board_entry entry = {.lag_us = 30000, .tick_ms = 10000};
    ck_assert_double_eq_tol(board_lag_seconds(&entry, 10050), 0.03, 1e-9);  /* ticked on time */
    ck_assert_double_eq_tol(board_lag_seconds(&entry, 10600), 0.5, 1e-9);   /* blocked for 500 ms now */
    struct board_entry never = {0};
    ck_assert_double_eq(board_lag_seconds(&never, 99999), 0);
}
END_TEST

Suite *autoscale_suite(void) {
    Suite *s = suite_create("autoscale");
    TCase *decide = tcase_create("decide");
    tcase_add_test(decide, test_steady_low_load_holds);
    tcase_add_test(decide, test_queued_connections_scale_up_within_about_a_second);
    tcase_add_test(decide, test_busy_workers_scale_up);
    tcase_add_test(decide, test_event_loop_lag_scales_up);
    tcase_add_test(decide, test_a_short_blip_does_not_scale_up);
    tcase_add_test(decide, test_a_burst_of_connections_does_not_scale_up);
    tcase_add_test(decide, test_no_decision_while_workers_boot);
    tcase_add_test(decide, test_never_above_max_and_blocked_is_reported_once);
    tcase_add_test(decide, test_memory_ceiling_limits_the_step_up);
    tcase_add_test(decide, test_workers_that_grew_past_the_memory_ceiling_give_one_back);
    tcase_add_test(decide, test_low_load_removes_one_worker_per_idle_period_down_to_min);
    tcase_add_test(decide, test_load_that_one_worker_fewer_could_not_carry_is_not_low);
    tcase_add_test(decide, test_new_bounds_move_the_count_at_once);
    tcase_add_test(decide, test_disabled_policy_only_tracks_the_signals);
    suite_add_tcase(s, decide);
    TCase *flags = tcase_create("flags");
    tcase_add_test(flags, test_range_parsing);
    tcase_add_test(flags, test_autoscale_flags_and_defaults);
    tcase_add_test(flags, test_bad_autoscale_input_names_the_flag);
    tcase_add_test(flags, test_check_ignores_autoscale);
    tcase_add_test(flags, test_autoscale_keys_in_a_config_file);
    tcase_add_test(flags, test_autoscale_requests);
    suite_add_tcase(s, flags);
    TCase *board = tcase_create("board");
    tcase_add_test(board, test_board_entries_are_claimed_zeroed_and_released);
    tcase_add_test(board, test_board_lag_counts_an_overdue_tick);
    tcase_add_test(board, test_an_upgraded_arbiter_adopts_the_board_its_workers_have_mapped);
    suite_add_tcase(s, board);
    return s;
}
