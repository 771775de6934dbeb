/* text_buffer.c - a growable text buffer with a hard cap (text_buffer.h). */
#include "text_buffer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void text_buffer_printf(struct text_buffer *b, const char *fmt, ...) {
    if (b->truncated)
        return;
    for (;;) {
        size_t room = b->capacity - b->length;
        va_list args;
        va_start(args, fmt);
        int n = b->data ? vsnprintf(b->data + b->length, room, fmt, args) : -2;
        va_end(args);
        if (n >= 0 && (size_t)n < room) {
            b->length += (size_t)n;
            return;
        }
        if (n == -1) {
            b->truncated = true;
            return;
        }
        size_t capacity = b->capacity ? b->capacity * 2 : 16384;
        if (b->limit && capacity > b->limit)
            capacity = b->limit;
        if (capacity <= b->capacity) {
            b->truncated = true;
            return;
        }
        char *data = realloc(b->data, capacity);
        if (!data) {
            b->truncated = true;
            return;
        }
        b->data = data;
        b->capacity = capacity;
    }
}

void text_buffer_free(struct text_buffer *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

void text_buffer_escape_label(struct text_buffer *b, const char *value) {
    for (const char *p = value; *p; p++) {
        if (*p == '\\')
            text_buffer_printf(b, "\\\\");
        else if (*p == '"')
            text_buffer_printf(b, "\\\"");
        else if (*p == '\n')
            text_buffer_printf(b, "\\n");
        else
            text_buffer_printf(b, "%c", *p);
    }
}

