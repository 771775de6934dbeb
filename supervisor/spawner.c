/* spawner.c - the exec spawner: a fresh interpreter per worker (the default). */
#include "spawner.h"

#include "pool.h"
#include "worker.h"

static int exec_spawn(struct spawner *spawner, struct worker *w, const struct worker_launch *launch, char *err,
                      size_t err_size) {
    return worker_exec(w, spawner->pool->loop, launch, err, err_size);
}

const struct spawner_ops spawner_exec_ops = {
    .name = "exec",
    .spawn = exec_spawn,
};
