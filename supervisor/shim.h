/* shim.h - finding the worker shim (arbiter_worker) that the workers run. */
#ifndef ARBITER_SHIM_H
#define ARBITER_SHIM_H

#include <stddef.h>

/* The directory holding the worker shim: $ARBITER_SHIM_PATH, the installed share directory next to
 * the binary, or the source tree this binary was built from; "" when none has it (it must then be
 * installed in the app's venv, as the wheel does). */
void shim_find_dir(char *out, size_t size);

#endif
