/* test_line_buffer.c - the worker channel's framing: which bytes come out as lines, and when. */
#include <string.h>

#include "line_buffer.h"
#include "unit.h"

/* The lines handed out so far, each copied as "<bytes>|" so a test compares one string. */
struct collected {
    char text[256];
    size_t length;
    unsigned count;
};

static void collect(void *context, const char *line, size_t length) {
    struct collected *c = context;
    ck_assert_uint_lt(c->length + length + 1, sizeof c->text);
    memcpy(c->text + c->length, line, length);
    c->length += length;
    c->text[c->length++] = '|';
    c->text[c->length] = '\0';
    c->count++;
}

/* Writes bytes into the buffer as one read would, then commits them. */
static bool feed(struct line_buffer *buffer, const char *bytes, size_t length, struct collected *out) {
    size_t size;
    char *space = line_buffer_space(buffer, &size);
    ck_assert_uint_le(length, size);
    memcpy(space, bytes, length);
    return line_buffer_commit(buffer, length, collect, out);
}

static bool feed_text(struct line_buffer *buffer, const char *text, struct collected *out) {
    return feed(buffer, text, strlen(text), out);
}

START_TEST(test_complete_lines_come_out_in_order) {
    char storage[64];
    struct line_buffer buffer;
    struct collected out = {0};
    line_buffer_init(&buffer, storage, sizeof storage);
    ck_assert(feed_text(&buffer, "one\ntwo\nthree\n", &out));
    ck_assert_str_eq(out.text, "one|two|three|");
}
END_TEST

START_TEST(test_a_line_split_across_reads_comes_out_once_whole) {
    char storage[64];
    struct line_buffer buffer;
    struct collected out = {0};
    line_buffer_init(&buffer, storage, sizeof storage);
    ck_assert(feed_text(&buffer, "{\"type\":", &out));
    ck_assert_uint_eq(out.count, 0);
    ck_assert(feed_text(&buffer, "\"ready\"}\n{\"ty", &out));
    ck_assert_str_eq(out.text, "{\"type\":\"ready\"}|");
    ck_assert(feed_text(&buffer, "pe\":1}\n", &out));
    ck_assert_str_eq(out.text, "{\"type\":\"ready\"}|{\"type\":1}|");
}
END_TEST

START_TEST(test_a_line_fed_byte_by_byte_comes_out_once) {
    char storage[16];
    struct line_buffer buffer;
    struct collected out = {0};
    line_buffer_init(&buffer, storage, sizeof storage);
    const char *text = "abc\ndef\n";
    for (size_t i = 0; text[i]; i++)
        ck_assert(feed(&buffer, text + i, 1, &out));
    ck_assert_str_eq(out.text, "abc|def|");
}
END_TEST

START_TEST(test_empty_lines_are_skipped) {
    char storage[16];
    struct line_buffer buffer;
    struct collected out = {0};
    line_buffer_init(&buffer, storage, sizeof storage);
    ck_assert(feed_text(&buffer, "\n\na\n\n", &out));
    ck_assert_str_eq(out.text, "a|");
}
END_TEST

START_TEST(test_an_unterminated_line_is_kept_not_handed_out) {
    char storage[16];
    struct line_buffer buffer;
    struct collected out = {0};
    line_buffer_init(&buffer, storage, sizeof storage);
    ck_assert(feed_text(&buffer, "partial", &out));
    ck_assert_uint_eq(out.count, 0);
    size_t size;
    ck_assert_ptr_eq(line_buffer_space(&buffer, &size), storage + 7);
    ck_assert_uint_eq(size, sizeof storage - 7);
}
END_TEST

START_TEST(test_a_line_of_capacity_minus_one_bytes_fits) {
    char storage[8];
    struct line_buffer buffer;
    struct collected out = {0};
    line_buffer_init(&buffer, storage, sizeof storage);
    ck_assert(feed_text(&buffer, "1234567\n", &out));
    ck_assert_str_eq(out.text, "1234567|");
}
END_TEST

START_TEST(test_a_line_of_capacity_bytes_is_dropped_and_reported_once) {
    char storage[8];
    struct line_buffer buffer;
    struct collected out = {0};
    line_buffer_init(&buffer, storage, sizeof storage);
    ck_assert(!feed_text(&buffer, "12345678", &out));
    ck_assert(feed_text(&buffer, "\nok\n", &out));
    ck_assert_str_eq(out.text, "ok|");
}
END_TEST

START_TEST(test_an_over_long_line_over_many_reads_is_reported_once_and_never_split) {
    char storage[8];
    struct line_buffer buffer;
    struct collected out = {0};
    line_buffer_init(&buffer, storage, sizeof storage);
    unsigned reports = 0;
    for (int i = 0; i < 50; i++) {
        size_t size;
        line_buffer_space(&buffer, &size);
        reports += !feed(&buffer, "xxxxxxxx", size < 3 ? size : 3, &out);
    }
    ck_assert_uint_eq(reports, 1);
    ck_assert(feed_text(&buffer, "x\nnext\n", &out));
    ck_assert_str_eq(out.text, "next|");
}
END_TEST

START_TEST(test_the_read_space_is_never_empty) {
    char storage[4];
    struct line_buffer buffer;
    struct collected out = {0};
    line_buffer_init(&buffer, storage, sizeof storage);
    size_t size;
    ck_assert(feed_text(&buffer, "abc", &out));
    line_buffer_space(&buffer, &size);
    ck_assert_uint_eq(size, 1);
    ck_assert(!feed_text(&buffer, "d", &out));
    ck_assert_ptr_eq(line_buffer_space(&buffer, &size), storage);
    ck_assert_uint_eq(size, sizeof storage);
}
END_TEST

START_TEST(test_a_nul_byte_is_part_of_a_line) {
    char storage[16];
    struct line_buffer buffer;
    struct collected out = {0};
    line_buffer_init(&buffer, storage, sizeof storage);
    ck_assert(feed(&buffer, "a\0b\n", 4, &out));
    ck_assert_uint_eq(out.count, 1);
    ck_assert_uint_eq(out.length, 4);
    ck_assert_mem_eq(out.text, "a\0b|", 4);
}
END_TEST

START_TEST(test_a_commit_larger_than_the_space_is_clamped) {
    char storage[4];
    struct line_buffer buffer;
    struct collected out = {0};
    line_buffer_init(&buffer, storage, sizeof storage);
    memcpy(storage, "ab\nc", 4);
    ck_assert(line_buffer_commit(&buffer, 100, collect, &out));
    ck_assert_str_eq(out.text, "ab|");
    size_t size;
    line_buffer_space(&buffer, &size);
    ck_assert_uint_eq(size, 3);
}
END_TEST

START_TEST(test_a_cutting_buffer_hands_out_the_start_of_an_over_long_line_once) {
    char storage[8];
    struct line_buffer buffer;
    struct collected out = {0};
    line_buffer_init_cutting(&buffer, storage, sizeof storage);
    ck_assert(!feed_text(&buffer, "abcdefgh", &out)); /* fills the buffer: cut, handed out, reported */
    ck_assert(feed_text(&buffer, "ijk\n", &out)); /* the rest of it skipped up to its newline */
    ck_assert(feed_text(&buffer, "next\n", &out));
    ck_assert_str_eq(out.text, "abcdefgh|next|");
    ck_assert_uint_eq(out.count, 2);
}
END_TEST

START_TEST(test_finish_hands_out_the_unfinished_last_line) {
    char storage[16];
    struct line_buffer buffer;
    struct collected out = {0};
    line_buffer_init_cutting(&buffer, storage, sizeof storage);
    ck_assert(feed_text(&buffer, "one\ntwo", &out));
    line_buffer_finish(&buffer, collect, &out);
    ck_assert_str_eq(out.text, "one|two|");
    line_buffer_finish(&buffer, collect, &out); /* nothing left: nothing more */
    ck_assert_uint_eq(out.count, 2);
}
END_TEST

Suite *line_buffer_suite(void) {
    Suite *suite = suite_create("line_buffer");
    TCase *tc = tcase_create("framing");
    tcase_add_test(tc, test_complete_lines_come_out_in_order);
    tcase_add_test(tc, test_a_line_split_across_reads_comes_out_once_whole);
    tcase_add_test(tc, test_a_line_fed_byte_by_byte_comes_out_once);
    tcase_add_test(tc, test_empty_lines_are_skipped);
    tcase_add_test(tc, test_an_unterminated_line_is_kept_not_handed_out);
    tcase_add_test(tc, test_a_line_of_capacity_minus_one_bytes_fits);
    tcase_add_test(tc, test_a_line_of_capacity_bytes_is_dropped_and_reported_once);
    tcase_add_test(tc, test_an_over_long_line_over_many_reads_is_reported_once_and_never_split);
    tcase_add_test(tc, test_the_read_space_is_never_empty);
    tcase_add_test(tc, test_a_nul_byte_is_part_of_a_line);
    tcase_add_test(tc, test_a_commit_larger_than_the_space_is_clamped);
    tcase_add_test(tc, test_a_cutting_buffer_hands_out_the_start_of_an_over_long_line_once);
    tcase_add_test(tc, test_finish_hands_out_the_unfinished_last_line);
    suite_add_tcase(suite, tc);
    return suite;
}
