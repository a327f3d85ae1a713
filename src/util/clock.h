/*
 * clock.h: the deadline of a condition variable's timed wait.
 */
#ifndef VMMUX_UTIL_CLOCK_H
#define VMMUX_UTIL_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_REALTIME (pthread_cond_timedwait's clock) NS nanoseconds from now. */
static inline struct timespec clock_deadline_in(uint64_t ns)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(ns / 1000000000ull);
	ts.tv_nsec += (long)(ns % 1000000000ull);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

#endif
