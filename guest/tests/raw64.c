/* raw64: a flat binary of 64-bit code at 0x200000 (entry = first byte). */
#include "rt.h"

int main(unsigned cpu, unsigned ncpus)
{
	(void)cpu;
	(void)ncpus;
	puts("raw long\n");
	return 0x06;
}
