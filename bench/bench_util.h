/*
 * bench_util.h: small helpers shared by the C benchmark programs.
 */
#ifndef VMMUX_BENCH_UTIL_H
#define VMMUX_BENCH_UTIL_H

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

/*
 * Pin the calling thread to CPU; 0, or -1 with "PROG: pinning to CPU N:
 * reason" on stderr (PROG NULL: no message).
 */
static inline int bench_pin(const char *prog, int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0) {
		if (prog)
			fprintf(stderr, "%s: pinning to CPU %d: %s\n", prog, cpu, strerror(errno));
		return -1;
	}
	return 0;
}

#endif
