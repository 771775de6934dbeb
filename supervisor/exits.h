/* exits.h - the arbiter's exit codes (a public interface: DESIGN.md, `man arbiter`). */
#ifndef ARBITER_EXITS_H
#define ARBITER_EXITS_H

enum {
    EXIT_CLEAN = 0,
    EXIT_RUNTIME_FAILURE = 1,
    EXIT_USAGE = 2,
    EXIT_BOOT_FAILURE = 3,
};

#endif
