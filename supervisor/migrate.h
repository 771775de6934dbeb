/* migrate.h - gunicorn.conf.py into --config JSON: `arbiter migrate` and `arbiter run -c FILE.py`. */
#ifndef ARBITER_MIGRATE_H
#define ARBITER_MIGRATE_H

#include <stddef.h>

struct json_t;

/* `arbiter migrate CONFIG [--python PATH]`: argv[0] is "migrate". Exit 0, 1 or 2. */
int migrate_main(int argc, char **argv);

/* config.c's python loader: the options of a gunicorn config, its lines printed on stderr; NULL with
 * err set when it cannot be evaluated or would drop a setting or hook. */
struct json_t *migrate_load_for_run(const char *path, const char *python, char *err, size_t err_size);

#endif
