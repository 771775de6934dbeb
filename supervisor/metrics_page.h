/* metrics_page.h - the /metrics page, from the census (status.h). */
#ifndef ARBITER_METRICS_PAGE_H
#define ARBITER_METRICS_PAGE_H

#include "autoscale.h"
#include "status.h"
#include "text_buffer.h"

/* The whole /metrics page. */
void metrics_render(const struct status_sources *sources, const struct autoscale *autoscale, struct text_buffer *out);

#endif
