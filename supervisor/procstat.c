/* procstat.c - reads /proc/PID/{stat,statm,smaps_rollup,cmdline}.
 *
 * PSS (proportional set size) is the memory figure that adds up: pages shared between workers
 * (libraries always; with --preload also everything the zygote imported, until a worker writes to
 * it) are divided among their users, where RSS counts them in full for every worker. Shared and
 * private show how much of a worker is really its own. */
#include "procstat.h"

#include <ctype.h>
#include <dirent.h>
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

int procstat_parse_field(const char *text, const char *field, uint64_t *bytes) {
    size_t length = strlen(field);
    const char *line = text;
    while (line) {
        if (strncmp(line, field, length) == 0 && line[length] == ':') {
            unsigned long long kib;
            if (sscanf(line + length + 1, " %llu kB", &kib) != 1)
                return -1;
            *bytes = (uint64_t)kib * 1024u;
            return 0;
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return -1;
}

int procstat_parse_pss(const char *text, uint64_t *bytes) { return procstat_parse_field(text, "Pss", bytes); }

/* Shared and private as smaps_rollup counts them: a page is shared while another process maps it
 * too (after a fork: until one of them writes to it). */
static void procstat_parse_sharing(const char *text, struct proc_stats *stats) {
    uint64_t clean = 0, dirty = 0;
    if (procstat_parse_field(text, "Shared_Clean", &clean) == 0 && procstat_parse_field(text, "Shared_Dirty", &dirty) == 0)
        stats->shared_bytes = clean + dirty;
    clean = dirty = 0;
    if (procstat_parse_field(text, "Private_Clean", &clean) == 0 && procstat_parse_field(text, "Private_Dirty", &dirty) == 0)
        stats->private_bytes = clean + dirty;
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
    if (read_small_file(path, buffer, sizeof buffer) > 0) {
        procstat_parse_pss(buffer, &stats->pss_bytes);
        procstat_parse_sharing(buffer, stats);
    }
    return 0;
}

int procstat_parse_identity(const char *text, struct proc_identity *identity) {
    int pid;
    const char *after = strrchr(text, ')'); /* the command name may hold spaces and parentheses */
    if (sscanf(text, "%d", &pid) != 1 || !after)
        return -1;
    char state;
    int ppid, pgrp;
    if (sscanf(after + 1, " %c %d %d", &state, &ppid, &pgrp) != 3)
        return -1;
    *identity = (struct proc_identity){.pid = pid, .ppid = ppid, .pgrp = pgrp, .state = state};
    return 0;
}

int procstat_for_each(void (*visit)(const struct proc_identity *identity, void *data), void *data) {
    DIR *proc = opendir("/proc");
    if (!proc)
        return -1;
    struct dirent *entry;
    while ((entry = readdir(proc)) != NULL) {
        if (!isdigit((unsigned char)entry->d_name[0]))
            continue;
        char path[64], buffer[1024];
        snprintf(path, sizeof path, "/proc/%.20s/stat", entry->d_name);
        struct proc_identity identity;
        if (read_small_file(path, buffer, sizeof buffer) > 0 && procstat_parse_identity(buffer, &identity) == 0)
            visit(&identity, data);
    }
    closedir(proc);
    return 0;
}

void procstat_command(pid_t pid, char *out, size_t size) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    ssize_t length = size > 1 ? read_small_file(path, out, size) : -1;
    if (length <= 0) {
        if (size)
            out[0] = '\0';
        return;
    }
    while (length > 0 && out[length - 1] == '\0')
        length--; /* the last argument's terminator */
    for (ssize_t i = 0; i < length; i++)
        if (out[i] == '\0')
            out[i] = ' ';
    out[length] = '\0';
}
