/* procstat.h - a process's memory and CPU from /proc. */
#ifndef ARBITER_PROCSTAT_H
#define ARBITER_PROCSTAT_H

#include <stdint.h>
#include <sys/types.h>

struct proc_stats {
    uint64_t rss_bytes;
    uint64_t pss_bytes; /* 0 when /proc/PID/smaps_rollup is unreadable */
    double cpu_seconds; /* user + system */
};

/* Returns 0, or -1 when the process is gone. */
int procstat_read(pid_t pid, struct proc_stats *stats);

/* Parses the "Pss:" line of smaps_rollup text, in bytes; -1 when absent. */
int procstat_parse_pss(const char *text, uint64_t *bytes);

#endif
