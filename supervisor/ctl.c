#include <stdio.h>
#include "ctl.h"
int ctl_main(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "arbiter ctl: not implemented yet\n"); return 1; }
