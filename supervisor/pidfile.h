/* pidfile.h - --pid FILE: write the arbiter's pid at start, remove it at exit. */
#ifndef ARBITER_PIDFILE_H
#define ARBITER_PIDFILE_H

#include <stddef.h>

/* Refuses a FILE that another live process owns; err says why and what to do. */
int pidfile_write(const char *path, char *err, size_t err_size);
/* Removes FILE if it still holds this process's pid. */
void pidfile_remove(const char *path);

#endif
