/* libFuzzer target: the worker channel, read as the arbiter reads it.
 *
 * Input: one options byte, then the bytes a worker writes to its channel. The bytes go through
 * line_buffer in reads of a size the options pick (the kernel may cut a stream anywhere; after
 * DRIP_READS of them, reads take all the room, so long inputs stay fast to run), with the
 * real 4096-byte buffer or a 64-byte one that reaches the over-long-line paths with short inputs.
 * Checked:
 *   - framing: the lines handed out are exactly those a reference splitter finds, and each line too
 *     long for the buffer is reported exactly once;
 *   - handling: each line goes to worker_handle_message, the real handler, as an exact-size heap
 *     copy, so a handler that reads past a line's length (channel lines carry no NUL) is an ASan
 *     report; every log line it writes (captured in a memfd) is one well-formed, printable line,
 *     so a worker can never forge or break the arbiter's log lines;
 *   - log_escape_excerpt against its specification, at several output sizes.
 *
 * The worker is a struct worker in a real pool with no slots and a real (never run) loop. Its pid
 * is INT_MAX, above any pid Linux hands out: a signal a handler sends or a /proc read finds no
 * process, so the fuzzer can never signal anything (pid 0 would be the fuzzer's process group). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <sanitizer/common_interface_defs.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "line_buffer.h"
#include "log.h"
#include "pool.h"
#include "worker.h"

#define SMALL_CAPACITY 64
#define DRIP_READS 256 /* reads of the chosen size; then each read takes all the room there is */

static uv_loop_t loop;
static struct config config;
static struct pool pool;
static struct worker *worker;
static int log_capture = -1; /* memfd: stderr while the handler runs */
static int real_stderr = -1;
static char log_prefix[64];  /* " fuzz[PID] ": what follows the timestamp on every text line */

static void pool_on_event(struct pool *p) { (void)p; }
static void pool_on_boot_failed(struct pool *p, int code) { (void)p, (void)code; }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    assert(uv_loop_init(&loop) == 0);
    config.max_workers = 1;
    config.timeout = 30;
    config.boot_timeout = 60;
    config.graceful_timeout = 30;
    struct pool_events events = {.changed = pool_on_event, .empty = pool_on_event, .boot_failed = pool_on_boot_failed};
    struct pool_deps deps = {.shim_dir = "", .events = events};
    assert(pool_init(&pool, &loop, &config, &deps) == 0);
    worker = calloc(1, sizeof *worker);
    assert(worker != NULL);
    worker->env = &pool.worker_env;
    worker->slot_id = 1;
    worker->pid = worker->child.pid = INT_MAX;
    assert(uv_timer_init(&loop, &worker->deadline) == 0);
    worker->deadline.data = worker;
    log_capture = memfd_create("arbiter-fuzz-log", MFD_CLOEXEC);
    real_stderr = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
    assert(log_capture >= 0 && real_stderr >= 0);
    __sanitizer_set_report_fd((void *)(intptr_t)real_stderr); /* reports never go to the capture */
    snprintf(log_prefix, sizeof log_prefix, " fuzz[%d] ", (int)getpid());
    return 0;
}

/* ---- framing ---- */

struct lines {
    char **items; /* exact-size heap copies, no NUL */
    size_t *lengths;
    size_t count, capacity;
};

FUZZ_ORACLE static void lines_collect(void *context, const char *line, size_t length) {
    struct lines *lines = context;
    assert(length > 0);
    if (lines->count == lines->capacity) {
        lines->capacity = lines->capacity ? 2 * lines->capacity : 16;
        lines->items = realloc(lines->items, lines->capacity * sizeof *lines->items);
        lines->lengths = realloc(lines->lengths, lines->capacity * sizeof *lines->lengths);
        assert(lines->items != NULL && lines->lengths != NULL);
    }
    char *copy = malloc(length);
    assert(copy != NULL);
    memcpy(copy, line, length);
    lines->items[lines->count] = copy;
    lines->lengths[lines->count++] = length;
}

/* The reference: split on '\n'; a line of 1..capacity-1 bytes comes out, a longer one (terminated
 * or not) is reported once, an empty or unterminated short one is neither. */
FUZZ_ORACLE static void framing_check(const uint8_t *data, size_t size, size_t capacity, const struct lines *lines,
                          unsigned reports) {
    size_t expected = 0, expected_reports = 0, start = 0;
    for (size_t i = 0; i <= size; i++) {
        bool terminated = i < size && data[i] == '\n';
        if (!terminated && i < size)
            continue;
        size_t length = i - start;
        if (length >= capacity) {
            expected_reports++;
        } else if (terminated && length > 0) {
            assert(expected < lines->count);
            assert(lines->lengths[expected] == length);
            assert(memcmp(lines->items[expected], data + start, length) == 0);
            expected++;
        }
        start = i + 1;
    }
    assert(expected == lines->count);
    assert(expected_reports == reports);
}

/* ---- the escaping ---- */

FUZZ_ORACLE static size_t escaped_width(unsigned char c) { return c == '\\' ? 2 : c >= 0x20 && c < 0x7f ? 1 : 4; }

FUZZ_ORACLE static int hex_value(char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; }

/* log_escape_excerpt's contract, checked by decoding: the whole input when its escape fits, else
 * the longest prefix of whole characters that leaves room for "...", then "...". */
FUZZ_ORACLE static void excerpt_check(const char *bytes, size_t length, size_t size) {
    char out[size]; /* exact size: ASan's stack redzones catch a write past it */
    const char *result = log_escape_excerpt(out, size, bytes, length);
    assert(result == out);
    size_t room = size - 1, written = strlen(out);
    assert(written <= room);
    size_t full = 0;
    for (size_t i = 0; i < length; i++)
        full += escaped_width((unsigned char)bytes[i]);
    size_t limit = full <= room ? written : written - (room < 3 ? room : 3);
    if (full > room)
        assert(memcmp(out + limit, "...", written - limit) == 0);
    size_t decoded = 0, at = 0;
    while (at < limit) {
        unsigned char c = (unsigned char)out[at];
        assert(c >= 0x20 && c < 0x7f);
        assert(decoded < length);
        unsigned char original = (unsigned char)bytes[decoded];
        if (c == '\\') {
            assert(at + 1 < limit);
            if (out[at + 1] == '\\') {
                assert(original == '\\');
                at += 2;
            } else {
                assert(out[at + 1] == 'x' && at + 3 < limit);
                assert(hex_value(out[at + 2]) >= 0 && hex_value(out[at + 3]) >= 0);
                assert(hex_value(out[at + 2]) * 16 + hex_value(out[at + 3]) == original);
                assert(escaped_width(original) == 4);
                at += 4;
            }
        } else {
            assert(c == original && escaped_width(original) == 1);
            at++;
        }
        decoded++;
    }
    if (full <= room) {
        assert(decoded == length);
    } else if (room >= 3) {
        /* maximal: the next character would not have fitted before the ellipsis */
        assert(decoded < length);
        assert(limit + escaped_width((unsigned char)bytes[decoded]) + 3 > room);
    }
}

/* ---- the handler's log lines ---- */

FUZZ_ORACLE static bool is_timestamp(const char *line, size_t length) {
    static const char pattern[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (length < sizeof pattern - 1)
        return false;
    for (size_t i = 0; i < sizeof pattern - 1; i++)
        if (pattern[i] == 'd' ? line[i] < '0' || line[i] > '9' : line[i] != pattern[i])
            return false;
    return true;
}

/* Every line log_event wrote since the last check: text starts with the timestamp and our name and
 * pid, JSON is one object with an event; nothing but printable ASCII in either. The capture is
 * emptied only when it grows large (truncating a memfd costs more than the handler). */
FUZZ_ORACLE static void log_check(enum log_format format) {
    static off_t checked;
    off_t end = lseek(log_capture, 0, SEEK_CUR);
    assert(end >= checked);
    if (end == checked)
        return;
    size_t size = (size_t)(end - checked);
    char *text = malloc(size);
    assert(text != NULL);
    assert(pread(log_capture, text, size, checked) == (ssize_t)size);
    assert(text[size - 1] == '\n');
    size_t start = 0;
    for (size_t i = 0; i < size; i++) {
        if (text[i] != '\n') {
            assert(text[i] >= 0x20 && text[i] < 0x7f);
            continue;
        }
        const char *line = text + start;
        size_t length = i - start;
        if (format == LOG_FORMAT_JSON) {
            json_error_t error;
            json_t *object = json_loadb(line, length, 0, &error);
            assert(json_is_object(object));
            assert(json_is_string(json_object_get(object, "event")));
            json_decref(object);
        } else {
            size_t prefix = strlen(log_prefix);
            assert(is_timestamp(line, length));
            assert(length >= 24 + prefix && memcmp(line + 24, log_prefix, prefix) == 0);
        }
        start = i + 1;
    }
    free(text);
    checked = end;
    if (checked > (1 << 20)) {
        assert(ftruncate(log_capture, 0) == 0);
        assert(lseek(log_capture, 0, SEEK_SET) == 0);
        checked = 0;
    }
}

/* Runs the handler on every line with stderr (where log lines go) pointed at the capture. */
static void handle_lines(const struct lines *lines, enum log_format format) {
    fflush(stderr);
    assert(dup2(log_capture, STDERR_FILENO) == STDERR_FILENO);
    for (size_t i = 0; i < lines->count; i++)
        worker_handle_message(worker, lines->items[i], lines->lengths[i]);
    assert(dup2(real_stderr, STDERR_FILENO) == STDERR_FILENO);
    log_check(format);
}

/* ---- the input ---- */

struct options {
    size_t capacity;
    size_t read_size;
    enum log_format format;
};

/* bit 0: buffer size; bits 1-2: read size; bits 3-4: worker state; bit 5: a stack dump pending;
 * bit 6: log format; bit 7: --max-lifetime already reached (a heartbeat retires the worker). */
static struct options options_apply(uint8_t bits) {
    static const size_t read_sizes[4] = {1, 3, 61, SIZE_MAX};
    static const enum worker_state states[4] = {WORKER_BOOTING, WORKER_READY, WORKER_DRAINING, WORKER_READY};
    struct options options = {
        .capacity = bits & 1 ? SMALL_CAPACITY : WORKER_LINE_MAX,
        .read_size = read_sizes[(bits >> 1) & 3],
        .format = bits & 0x40 ? LOG_FORMAT_JSON : LOG_FORMAT_TEXT,
    };
    worker->state = states[(bits >> 3) & 3];
    worker->retire_requested = ((bits >> 3) & 3) == 3;
    worker->kill_reason = KILL_NONE;
    worker->stack_dump_requested = (bits & 0x20) != 0;
    worker->requests = worker->in_flight = 0;
    worker->stats_ms = 0;
    worker->started_ms = 0;
    worker->ready_ms = 0;
    config.max_lifetime = bits & 0x80 ? 0.001 : 0;
    log_configure(LOG_DEBUG, options.format, "fuzz");
    return options;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    struct options options = options_apply(data[0]);
    /* Half the inputs come from a worker whose hello was accepted (every message type is reached),
     * half from one that has not said it yet (the handshake decides on its first line). */
    worker->greeted = data[0] & 0x80;
    worker->kill_reason = KILL_NONE;
    data++, size--;

    struct line_buffer buffer;
    line_buffer_init(&buffer, worker->child.line_storage, options.capacity);
    struct lines lines = {0};
    unsigned reports = 0;
    for (size_t at = 0, reads = 0; at < size; reads++) {
        size_t room;
        char *space = line_buffer_space(&buffer, &room);
        assert(room > 0 && room <= options.capacity);
        assert(space >= worker->child.line_storage && space + room == worker->child.line_storage + options.capacity);
        size_t count = size - at < room ? size - at : room;
        if (reads < DRIP_READS && count > options.read_size)
            count = options.read_size;
        memcpy(space, data + at, count);
        at += count;
        reports += !line_buffer_commit(&buffer, count, lines_collect, &lines);
    }
    framing_check(data, size, options.capacity, &lines, reports);

    handle_lines(&lines, options.format);
    static const size_t excerpt_sizes[4] = {81, 1, 3, 9}; /* the worker's, and the edge cases */
    for (size_t i = 0; i < lines.count; i++) {
        excerpt_check(lines.items[i], lines.lengths[i], excerpt_sizes[i % 4]);
        free(lines.items[i]);
    }
    free(lines.items);
    free(lines.lengths);
    return 0;
}
