/* procstat.c - reads /proc/PID/{stat,statm,smaps_rollup}.
 *
 * PSS (proportional set size) is the memory figure that adds up: pages shared between workers
 * (the interpreter, imported modules after fork-less start are mostly private, but libraries are
 * shared) are divided among their users, where RSS counts them in full for every worker. */
#include "procstat.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ssize_t read_small_file(const char *path, char *buffer, size_t size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t total = 0;
    while ((size_t)total < size - 1) {
        ssize_t n = read(fd, buffer + total, size - 1 - (size_t)total);
        if (n <= 0)
            break;
        total += n;
    }
    close(fd);
    buffer[total] = '\0';
    return total;
}

int procstat_parse_pss(const char *text, uint64_t *bytes) {
    const char *line = strstr(text, "\nPss:");
    if (!line && strncmp(text, "Pss:", 4) == 0)
        line = text - 1;
    if (!line)
        return -1;
    unsigned long long kib;
    if (sscanf(line + 5, " %llu kB", &kib) != 1)
        return -1;
    *bytes = (uint64_t)kib * 1024u;
    return 0;
}

int procstat_read(pid_t pid, struct proc_stats *stats) {
    memset(stats, 0, sizeof *stats);
    char path[64], buffer[4096];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    unsigned long long size_pages, rss_pages;
    if (read_small_file(path, buffer, sizeof buffer) <= 0 || sscanf(buffer, "%llu %llu", &size_pages, &rss_pages) != 2)
        return -1;
    long page = sysconf(_SC_PAGESIZE);
    stats->rss_bytes = (uint64_t)rss_pages * (uint64_t)(page > 0 ? page : 4096);
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (read_small_file(path, buffer, sizeof buffer) > 0) {
        /* Fields after the command name, which may contain spaces: find the last ')'. */
        char *after = strrchr(buffer, ')');
        unsigned long long utime, stime;
        if (after && sscanf(after + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) == 2) {
            long ticks = sysconf(_SC_CLK_TCK);
            stats->cpu_seconds = (double)(utime + stime) / (double)(ticks > 0 ? ticks : 100);
        }
    }
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
    if (read_small_file(path, buffer, sizeof buffer) > 0)
        procstat_parse_pss(buffer, &stats->pss_bytes);
    return 0;
}
