/* status_json.h - `ctl status` as JSON, from the census (status.h). */
#ifndef ARBITER_STATUS_JSON_H
#define ARBITER_STATUS_JSON_H

#include <jansson.h>

#include "autoscale.h"
#include "status.h"

/* The whole status reply ({"ok":true, ...}; the fields are in control_commands.h). */
json_t *status_json(const struct status_sources *sources, const struct autoscale *autoscale);

/* The "autoscale" object of status, also the reply of `ctl autoscale`. */
json_t *autoscale_json(const struct autoscale *autoscale);

#endif
