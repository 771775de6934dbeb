/* board.c - the shared page of worker gauges (see board.h for what it is for).
 *
 * The arbiter owns the board: it creates it before any worker, hands an entry to each worker it
 * spawns (the entry's index and the memfd travel with the worker's other fds), and zeroes the entry
 * once that worker has been reaped, so a crashed worker's last figures never linger. A worker finds
 * its entry by index and writes only there; pages are allocated by the kernel on first touch, so an
 * arbiter with --max-workers 1024 pays for the entries its workers actually use. */
#define _GNU_SOURCE
#include "board.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

_Static_assert(sizeof(struct board_entry) == 64, "a board entry is one cache line");
_Static_assert(sizeof(struct board_header) == 64, "the header fills entry 0");

/* Workers scan entries 1 .. in_use-1 before every accept: with --max-workers 128 the board has 264
 * entries, and walking them all would cost more than the accept itself. */
static void board_update_in_use(struct board *board) {
    size_t in_use = 1;
    for (size_t i = board->count; i > 1; i--) {
        if (board->used[i - 1]) {
            in_use = i;
            break;
        }
    }
    ((struct board_header *)board->entries)->in_use = (int64_t)in_use;
}

int board_open(struct board *board, size_t workers, char *err, size_t err_size) {
    memset(board, 0, sizeof *board);
    board->fd = -1;
    size_t count = workers + 1;
    size_t bytes = count * sizeof(struct board_entry);
    board->used = calloc(count, 1);
    if (!board->used) {
        snprintf(err, err_size, "out of memory for the worker board");
        return -1;
    }
    board->fd = memfd_create("arbiter-board", MFD_CLOEXEC);
    if (board->fd < 0) {
        snprintf(err, err_size, "memfd_create() for the worker board failed: %s (Linux >= 3.17 is needed)", strerror(errno));
        board_close(board);
        return -1;
    }
    if (ftruncate(board->fd, (off_t)bytes) != 0) {
        snprintf(err, err_size, "cannot size the worker board to %zu bytes: %s", bytes, strerror(errno));
        board_close(board);
        return -1;
    }
    void *map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, board->fd, 0);
    if (map == MAP_FAILED) {
        snprintf(err, err_size, "cannot map the worker board: %s (check ulimit -v)", strerror(errno));
        board_close(board);
        return -1;
    }
    board->entries = map;
    board->count = count;
    board->used[0] = 1;
    struct board_header *header = (struct board_header *)map;
    header->version = BOARD_VERSION;
    header->entries = (int64_t)count;
    header->entry_size = (int64_t)sizeof(struct board_entry);
    header->in_use = 1;
    header->magic = BOARD_MAGIC;
    return 0;
}

int board_adopt(struct board *board, int fd, char *err, size_t err_size) {
    memset(board, 0, sizeof *board);
    board->fd = fd;
    fcntl(fd, F_SETFD, FD_CLOEXEC); /* inheritable only across the exec; each worker gets it explicitly */
    struct board_header header;
    if (pread(fd, &header, sizeof header, 0) != (ssize_t)sizeof header || header.magic != BOARD_MAGIC ||
        header.version != BOARD_VERSION || header.entry_size != (int64_t)sizeof(struct board_entry) ||
        header.entries < 2 || header.entries > 1 << 20) {
        snprintf(err, err_size, "the board handed over by the previous image (fd %d) is not a version %d board", fd,
                 BOARD_VERSION);
        board_close(board);
        return -1;
    }
    size_t count = (size_t)header.entries;
    board->used = calloc(count, 1);
    void *map = board->used ? mmap(NULL, count * sizeof(struct board_entry), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                            : MAP_FAILED;
    if (map == MAP_FAILED) {
        snprintf(err, err_size, "cannot map the board handed over by the previous image: %s", strerror(errno));
        board_close(board);
        return -1;
    }
    board->entries = map;
    board->count = count;
    board->used[0] = 1;
    return 0;
}

void board_mark_used(struct board *board, unsigned index) {
    if (index == 0 || index >= board->count)
        return;
    board->used[index] = 1;
    board_update_in_use(board);
}

unsigned board_claim(struct board *board) {
    for (size_t i = 1; i < board->count; i++) {
        if (!board->used[i]) {
            board->used[i] = 1;
            memset((void *)&board->entries[i], 0, sizeof board->entries[i]);
            board_update_in_use(board);
            return (unsigned)i;
        }
    }
    return 0;
}

void board_release(struct board *board, unsigned index) {
    if (index == 0 || index >= board->count)
        return;
    memset((void *)&board->entries[index], 0, sizeof board->entries[index]);
    board->used[index] = 0;
    board_update_in_use(board);
}

const struct board_entry *board_get(const struct board *board, unsigned index) {
    if (!board || !board->entries || index == 0 || index >= board->count)
        return NULL;
    return &board->entries[index];
}

double board_lag_seconds(const struct board_entry *entry, uint64_t now_ms) {
    /* The worker ticks every 100 ms; a tick overdue by more than that is lag happening now. */
    double reported = (double)entry->lag_us / 1e6;
    int64_t tick = entry->tick_ms;
    if (tick <= 0 || (int64_t)now_ms <= tick + 100)
        return reported;
    double overdue = (double)((int64_t)now_ms - tick - 100) / 1000.0;
    return overdue > reported ? overdue : reported;
}

void board_close(struct board *board) {
    if (board->entries)
        munmap(board->entries, board->count * sizeof(struct board_entry));
    if (board->fd >= 0)
        close(board->fd);
    free(board->used);
    memset(board, 0, sizeof *board);
    board->fd = -1;
}
