#include "control.h"
int control_start(struct control *control, struct arbiter *arbiter, char *err, size_t err_size) { (void)err; (void)err_size; control->arbiter = arbiter; return 0; }
void control_on_change(struct control *control) { (void)control; }
void control_close(struct control *control) { (void)control; }
