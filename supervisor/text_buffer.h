/* text_buffer.h - a growable text buffer with a hard cap: writes past the cap set `truncated`. */
#ifndef ARBITER_TEXT_BUFFER_H
#define ARBITER_TEXT_BUFFER_H

#include <stdbool.h>
#include <stddef.h>

struct text_buffer {
    char *data;
    size_t length;
    size_t capacity;
    size_t limit;
    bool truncated;
};

void text_buffer_printf(struct text_buffer *buffer, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void text_buffer_free(struct text_buffer *buffer);

/* Writes value with Prometheus label escaping (\\, \", \n). */
void text_buffer_escape_label(struct text_buffer *buffer, const char *value);

#endif
