/* placeholder replaced by the control module */
#ifndef ARBITER_CONTROL_H
#define ARBITER_CONTROL_H
#include <stddef.h>
struct arbiter;
struct control { struct arbiter *arbiter; };
int control_start(struct control *control, struct arbiter *arbiter, char *err, size_t err_size);
void control_on_change(struct control *control);
void control_close(struct control *control);
#endif
