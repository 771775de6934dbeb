/* line_buffer.h - splits a byte stream into newline-terminated lines, with a hard length cap. */
#ifndef ARBITER_LINE_BUFFER_H
#define ARBITER_LINE_BUFFER_H

#include <stdbool.h>
#include <stddef.h>

/* The storage belongs to the caller (embedded in its struct), so a buffer costs no allocation. */
struct line_buffer {
    char *data;
    size_t capacity;
    size_t length;   /* bytes of the unfinished line, from data[0] */
    bool discarding; /* inside an over-long line: drop bytes up to its newline */
    bool cut;        /* hand out an over-long line's first capacity bytes instead of nothing (logs) */
};

/* Called for each complete, non-empty line, without its '\n'. The bytes are not NUL-terminated and
 * stay valid only during the call. */
typedef void (*line_buffer_on_line)(void *context, const char *line, size_t length);

void line_buffer_init(struct line_buffer *buffer, char *storage, size_t capacity);

/* Log output: an over-long line is cut to its first `capacity` bytes rather than dropped whole. */
void line_buffer_init_cutting(struct line_buffer *buffer, char *storage, size_t capacity);

/* The stream ended: hands out the unfinished last line, if any, and empties the buffer. */
void line_buffer_finish(struct line_buffer *buffer, line_buffer_on_line on_line, void *context);

/* Where the next read goes: never empty, so a reader always has room. */
char *line_buffer_space(const struct line_buffer *buffer, size_t *size);

/* Takes `count` bytes just written at line_buffer_space() and hands every line they complete to
 * on_line, in order. A line of capacity bytes or more is never handed out: it is dropped up to its
 * newline (or, when cutting, handed out cut), and the call in which its bytes filled the buffer
 * returns false (once per such line), so the caller can report it. */
bool line_buffer_commit(struct line_buffer *buffer, size_t count, line_buffer_on_line on_line, void *context);

#endif
