/* log.h - the arbiter's own log lines, text for a terminal or one JSON object per line. */
#ifndef ARBITER_LOG_H
#define ARBITER_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERROR, LOG_CRITICAL };
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

/* Parses "debug|info|warning|error|critical" (also "trace" → debug, "warn" → warning).
 * Returns 0 and sets *level, or -1 when the name is unknown. */
int log_level_parse(const char *name, enum log_level *level);
const char *log_level_name(enum log_level level);
int log_format_parse(const char *name, enum log_format *format);

void log_configure(enum log_level level, enum log_format format, const char *name);

/* --log-file: opens PATH for appending and points stdout and stderr at it, so the workers, which
 * inherit them, log there too. Called again (SIGUSR1) it reopens PATH after a rotation.
 * Returns 0, or -1 with err set (the old file stays in use). */
int log_open_file(const char *path, char *err, size_t err_size);

/* --log-file -: points stderr at stdout, so the arbiter's and the workers' lines (they inherit
 * both) go to the one stream a container runtime collects as "stdout". Returns 0, or -1 with err. */
int log_use_stdout(char *err, size_t err_size);

/* Hands the log file (our stderr, as log_open_file left it) to a worker over its channel: the line
 * {"type":"log_file"} with the fd attached (SCM_RIGHTS; docs/worker-channel.md). A worker that runs
 * as --user cannot open a root-owned 0640 file itself. Returns 0, or -1 with err set. */
int log_send_file(int channel_fd, char *err, size_t err_size);

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
