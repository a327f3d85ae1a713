/*
 * iobench: the guest of the transition benchmarks (bench/transition). Run at
 * CPL3 (--cpu-mode user), where guest code runs natively on PVM hosts, so
 * that the time per exit is the exit path's own. It writes IOBENCH_N values
 * to port 0x90 (OUT: a write, which a posted route need not wait for), then
 * reads port 0x91 IOBENCH_N times (IN: the guest waits for the value), then
 * exits with code 0 (status 1).
 */
#include "rt.h"

#ifndef IOBENCH_N
#define IOBENCH_N 5000
#endif

int main(unsigned cpu, unsigned ncpus)
{
	(void)cpu;
	(void)ncpus;
	for (unsigned i = 0; i < IOBENCH_N; i++)
		outl(0x90, i);
	uint32_t sum = 0;
	for (unsigned i = 0; i < IOBENCH_N; i++)
		sum += inl(0x91);
	(void)sum;
	return 0;
}
