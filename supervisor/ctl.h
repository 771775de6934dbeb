/* ctl.h - `arbiter ctl`: the control client. */
#ifndef ARBITER_CTL_H
#define ARBITER_CTL_H
int ctl_main(int argc, char **argv);
#endif
