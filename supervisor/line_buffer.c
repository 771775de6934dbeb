/* line_buffer.c - newline framing for a stream read into a fixed buffer.
 *
 * The worker channel is a stream of JSON lines. A read may end anywhere: in the middle of a line,
 * or after several. The buffer keeps only the unfinished line, moved to the front after each read,
 * so its size is the longest line accepted and memory stays fixed whatever a worker sends. A line
 * that does not fit cannot be parsed, so it is dropped whole (never cut into pieces that would each
 * look like a line); only its start costs buffer space, the rest is discarded as it arrives. Log
 * output, which is read by people rather than parsed, keeps the start of such a line instead.
 *
 * Pure: no I/O, no allocation, no libuv, so unit tests and the fuzzer drive it byte by byte. */
#include "line_buffer.h"

#include <string.h>

void line_buffer_init(struct line_buffer *b, char *storage, size_t capacity) {
    *b = (struct line_buffer){.data = storage, .capacity = capacity};
}

void line_buffer_init_cutting(struct line_buffer *b, char *storage, size_t capacity) {
    *b = (struct line_buffer){.data = storage, .capacity = capacity, .cut = true};
}

void line_buffer_finish(struct line_buffer *b, line_buffer_on_line on_line, void *context) {
    if (!b->discarding && b->length)
        on_line(context, b->data, b->length);
    b->length = 0;
    b->discarding = false;
}

char *line_buffer_space(const struct line_buffer *b, size_t *size) {
    *size = b->capacity - b->length;
    return b->data + b->length;
}

bool line_buffer_commit(struct line_buffer *b, size_t count, line_buffer_on_line on_line, void *context) {
    if (count > b->capacity - b->length)
        count = b->capacity - b->length; /* a reader cannot have written more than the space */
    size_t end = b->length + count;
    size_t start = 0;
    /* The kept bytes hold no newline (the previous commit handed out every complete line): only the
     * new bytes need scanning. */
    size_t scan = b->length;
    const char *newline;
    while (scan < end && (newline = memchr(b->data + scan, '\n', end - scan)) != NULL) {
        size_t at = (size_t)(newline - b->data);
        if (!b->discarding && at > start)
            on_line(context, b->data + start, at - start);
        b->discarding = false;
        start = scan = at + 1;
    }
    if (b->discarding) {
        b->length = 0; /* still inside the over-long line: its bytes go */
        return true;
    }
    memmove(b->data, b->data + start, end - start);
    b->length = end - start;
    if (b->length < b->capacity)
        return true;
    if (b->cut)
        on_line(context, b->data, b->length);
    b->length = 0;
    b->discarding = true;
    return false;
}
