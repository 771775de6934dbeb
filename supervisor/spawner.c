/* spawner.c - the exec spawner: a fresh interpreter per worker (the default). */
#include "spawner.h"

#include "worker.h"

static int exec_spawn(struct spawner *spawner, struct worker *w, const struct worker_launch *launch, char *err,
                      size_t err_size) {
    (void)spawner;
    return worker_exec(w, launch, err, err_size);
}

const struct spawner_ops spawner_exec_ops = {
    .name = "exec",
    .spawn = exec_spawn,
};
