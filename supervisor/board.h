/* board.h - the board: one shared page of live gauges, one entry per worker.
 *
 * A memfd that every worker maps (inherited, see docs/worker-channel.md, "The board"). Each worker
 * writes only its own entry; everyone may read every entry. Workers read it to share the accept
 * queue evenly (a worker holds off accepting while it has more than its share of the serving
 * workers' connections); the arbiter reads it for status, metrics and autoscaling (requests in
 * flight and event-loop lag, as fresh as the workers' 10 Hz tick instead of their heartbeats).
 *
 * Every field is an aligned int64_t written with one store, so a reader sees each value whole; the
 * values of one entry are not a consistent snapshot together, which gauges do not need. */
#ifndef ARBITER_BOARD_H
#define ARBITER_BOARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BOARD_MAGIC 0x4152424954455231LL /* "ARBITER1" */
#define BOARD_VERSION 1

/* Entry 0 is the header; workers use entries 1 .. count-1. One cache line each, so a worker's
 * writes never invalidate the line another worker is writing. */
struct board_entry {
    volatile int64_t pid;         /* the worker's pid, written by the worker; 0: free */
    volatile int64_t connections; /* open connections (HTTP and WebSocket) */
    volatile int64_t serving;     /* 1 while the worker accepts new connections */
    volatile int64_t in_flight;   /* requests and WebSocket sessions running, as of the last tick */
    volatile int64_t lag_us;      /* how late the worker's last 0.1 s tick fired (event-loop lag) */
    volatile int64_t tick_ms;     /* CLOCK_MONOTONIC ms of the last tick: a blocked loop stops it */
    volatile int64_t reserved[2];
};

struct board_header {
    int64_t magic;
    int64_t version;
    int64_t entries; /* including this header */
    int64_t entry_size;
    volatile int64_t in_use; /* 1 + the highest entry a live worker has: readers scan no further */
    int64_t reserved[3];
};

struct board {
    int fd;                 /* memfd, close-on-exec: passed explicitly to each worker */
    struct board_entry *entries;
    size_t count;           /* entries, header included */
    unsigned char *used;    /* used[i]: entry i belongs to a live worker */
};

/* Creates the memfd and maps it: room for `workers` live workers (active, successors, draining). */
int board_open(struct board *board, size_t workers, char *err, size_t err_size);

/* In-place upgrade: maps the previous image's board (the memfd it handed over) instead of creating
 * one; the adopted workers then mark their entries with board_mark_used. */
int board_adopt(struct board *board, int fd, char *err, size_t err_size);

/* An adopted worker keeps its entry. */
void board_mark_used(struct board *board, unsigned index);

/* A free entry for a new worker, zeroed; 0 when none is free (the worker then runs without one). */
unsigned board_claim(struct board *board);

/* The worker has exited: its entry is zeroed and free again. */
void board_release(struct board *board, unsigned index);

/* The entry of a live worker, or NULL for index 0 / an unopened board. */
const struct board_entry *board_get(const struct board *board, unsigned index);

/* Event-loop lag of a worker as of now_ms (CLOCK_MONOTONIC): the lag it reported at its last tick,
 * or, when that tick is overdue, how overdue it is (a loop blocked right now reports nothing). */
double board_lag_seconds(const struct board_entry *entry, uint64_t now_ms);

void board_close(struct board *board);

#endif
