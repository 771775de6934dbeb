/* procstat.h - a process's memory and CPU from /proc. */
#ifndef ARBITER_PROCSTAT_H
#define ARBITER_PROCSTAT_H

#include <stdint.h>
#include <sys/types.h>

struct proc_stats {
    uint64_t rss_bytes;
    uint64_t pss_bytes;     /* 0 when /proc/PID/smaps_rollup is unreadable */
    uint64_t shared_bytes;  /* Shared_Clean + Shared_Dirty: resident pages another process maps too */
    uint64_t private_bytes; /* Private_Clean + Private_Dirty: resident pages only this process maps */
    double cpu_seconds; /* user + system */
};

/* Returns 0, or -1 when the process is gone. */
int procstat_read(pid_t pid, struct proc_stats *stats);

/* Parses the "Pss:" line of smaps_rollup text, in bytes; -1 when absent. */
int procstat_parse_pss(const char *text, uint64_t *bytes);

/* Parses the "FIELD: N kB" line of smaps_rollup text, in bytes; -1 when absent. */
int procstat_parse_field(const char *text, const char *field, uint64_t *bytes);

/* Who a process is to others: its state letter (R, S, Z...), parent and process group. */
struct proc_identity {
    pid_t pid;
    pid_t ppid;
    pid_t pgrp;
    char state;
};

/* Parses the text of /proc/PID/stat (pure); -1 when it is not one. */
int procstat_parse_identity(const char *stat_text, struct proc_identity *identity);

/* Calls visit for every process in /proc: a snapshot, processes come and go meanwhile. -1 when /proc
 * cannot be read (errno says why). */
int procstat_for_each(void (*visit)(const struct proc_identity *identity, void *data), void *data);

/* Its command line with spaces between the arguments ("" when gone); at most size - 1 bytes. */
void procstat_command(pid_t pid, char *out, size_t size);

#endif
