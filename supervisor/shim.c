/* shim.c - where the worker shim (the arbiter_worker package) lives, for the workers' PYTHONPATH. */
#include "shim.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#ifndef ARBITER_SOURCE_SHIM_DIR
#define ARBITER_SOURCE_SHIM_DIR ""
#endif

static bool shim_dir_valid(const char *dir) {
    char probe[PATH_MAX + 64];
    snprintf(probe, sizeof probe, "%s/arbiter_worker/__main__.py", dir);
    return access(probe, R_OK) == 0;
}

/* Where the worker shim lives: $ARBITER_SHIM_PATH, the installed share directory next to the
 * binary, or the source tree this binary was built from. Empty when none has it: the shim must then
 * be installed in the app's venv (the wheel does that). */
void shim_find_dir(char *out, size_t size) {
    const char *from_env = getenv("ARBITER_SHIM_PATH");
    if (from_env && *from_env) {
        snprintf(out, size, "%s", from_env);
        if (!shim_dir_valid(out))
            log_warning("shim_missing", "ARBITER_SHIM_PATH=%s has no arbiter_worker package", from_env);
        return;
    }
    char dir[PATH_MAX];
    if (config_executable_dir(dir, sizeof dir) == 0) {
        int n = snprintf(out, size, "%s/../share/arbiter/python", dir);
        if (n > 0 && (size_t)n < size && shim_dir_valid(out))
            return;
    }
    snprintf(out, size, "%s", ARBITER_SOURCE_SHIM_DIR);
    if (*out && shim_dir_valid(out))
        return;
    out[0] = '\0';
}
