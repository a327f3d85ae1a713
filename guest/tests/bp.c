/* bp: bp_target (a global symbol, for --break ADDR) is called once. */
#include "rt.h"

volatile unsigned bp_hits;

__attribute__((noinline)) void bp_target(void)
{
	bp_hits++;
}

int main(unsigned cpu, unsigned ncpus)
{
	(void)cpu;
	(void)ncpus;
	bp_target();
	printf("bp done\n");
	return bp_hits == 1 ? 0x22 : 0x23;
}
