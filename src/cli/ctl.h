/*
 * ctl.h: `vmmux ctl`, the client of the control socket (src/api/api.h,
 * docs/control-api.md).
 */
#ifndef VMMUX_CLI_CTL_H
#define VMMUX_CLI_CTL_H

#include <stdio.h>

/* Exit statuses of `vmmux ctl` besides 0 and EXIT_USAGE (2). */
#define CTL_EXIT_ERROR	 1 /* the server answered with an error */
#define CTL_EXIT_CONNECT 6 /* no answer: cannot connect, connection lost, timeout */

/* `vmmux ctl ARGS...` (ARGV[0] is "ctl"); returns the exit status. */
int cmd_ctl(int argc, char **argv);

/* Its --help text. */
void ctl_print_help(FILE *f);

#endif
