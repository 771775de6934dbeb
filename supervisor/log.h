/* log.h - the arbiter's own log lines, text for a terminal or one JSON object per line. */
#ifndef ARBITER_LOG_H
#define ARBITER_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERROR, LOG_CRITICAL };
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

/* Parses "debug|info|warning|error|critical" (also "trace" → debug, "warn" → warning).
 * Returns 0 and sets *level, or -1 when the name is unknown. */
int log_level_parse(const char *name, enum log_level *level);
const char *log_level_name(enum log_level level);
int log_format_parse(const char *name, enum log_format *format);

void log_configure(enum log_level level, enum log_format format, const char *name);

/* The output of every line, the arbiter's and its workers' (they write into pipes the arbiter reads):
 * stderr (the default), stdout (--log-file -) or a file (--log-file PATH: opened for appending; called
 * again on SIGUSR1, it reopens PATH after a rotation). Our own stderr stays where it was, so a
 * failing log file can be reported there. Each returns 0, or -1 with err set (the old output stays). */
int log_use_stderr(char *err, size_t err_size);
int log_use_stdout(char *err, size_t err_size);
int log_open_file(const char *path, char *err, size_t err_size);

/* Hands the log file to a worker over its channel: the line {"type":"log_file"} with the fd attached
 * (SCM_RIGHTS; docs/worker-channel.md). Only for a worker adopted from an older image that still
 * writes to the file itself. Returns 0, or -1 with err set. */
int log_send_file(int channel_fd, char *err, size_t err_size);

/* The loop retries a blocked or failing output (log_sink.h); detach flushes what is left, waiting
 * at most LOG_FINAL_FLUSH_MS, before the loop closes. */
struct uv_loop_s;
void log_attach(struct uv_loop_s *loop);
void log_detach(void);
/* Writes what log_output_line queued (log_event flushes by itself). */
void log_flush(void);
/* The same within a few milliseconds, batched with what comes meanwhile (a worker's read). */
void log_flush_soon(void);
uint64_t log_lines_dropped(void);
uint64_t log_write_errors(void);

/* Whose lines a child's output pipe carries: "worker" with its slot id, or "zygote". */
struct log_source {
    unsigned worker_id; /* 0: not a worker */
    int pid;
    char kind[16];
    char prefix[64]; /* "[worker 2 pid 1234] " */
    size_t prefix_length;
};
void log_source_set(struct log_source *source, const char *kind, unsigned worker_id, int pid);

/* Queues one line a child wrote (without its '\n'), prefixed or wrapped as the format wants.
 * Returns false when it was dropped (the output is not keeping up). */
bool log_output_line(const struct log_source *source, const char *line, size_t length);

/* Worker fields are optional: pass worker_id 0 and pid 0 when the line is about the arbiter. */
void log_event(enum log_level level, const char *event, unsigned worker_id, int pid,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void log_event_v(enum log_level level, const char *event, unsigned worker_id, int pid,
                 const char *fmt, va_list args);

/* Writes untrusted bytes (a worker's channel line, say) as a bounded excerpt that is safe in a log
 * line: printable ASCII as is, a backslash as "\\", every other byte (newlines included) as "\xNN".
 * Reads exactly `length` bytes, which need no terminating NUL. When the escaped text does not fit in
 * size - 1 characters, it is cut at a whole character and ends with "...". Always NUL-terminates
 * out (size >= 1); returns out, for use as a printf argument. */
const char *log_escape_excerpt(char *out, size_t size, const char *bytes, size_t length);

#define log_debug(event, ...) log_event(LOG_DEBUG, event, 0, 0, __VA_ARGS__)
#define log_info(event, ...) log_event(LOG_INFO, event, 0, 0, __VA_ARGS__)
#define log_warning(event, ...) log_event(LOG_WARNING, event, 0, 0, __VA_ARGS__)
#define log_error(event, ...) log_event(LOG_ERROR, event, 0, 0, __VA_ARGS__)

#endif
