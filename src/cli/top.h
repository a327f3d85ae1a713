/*
 * top.h: `vmmux top`, a live view of a running VM through its control
 * socket (src/cli/top.c; docs/observability.md).
 */
#ifndef VMMUX_CLI_TOP_H
#define VMMUX_CLI_TOP_H

#include <stdio.h>

/*
 * Run `vmmux top` with ARGV[0] = "top" and its options after it. Returns the
 * exit status: 0 (--once printed, --count screens shown, or the run ended
 * while watching), 2 for a bad option, 6 when the socket cannot be reached
 * or does not answer metrics.get.
 */
int cmd_top(int argc, char **argv);

/* The help of `vmmux top` (for `vmmux help top`). */
void top_print_help(FILE *f);

#endif
