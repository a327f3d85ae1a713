/*
 * msr: WRMSR/RDMSR in the range 0x40001000-0x400010ff, then an RDMSR of an
 * unrouted MSR that vmmux answers with #GP (caught: printed as "gp").
 */
#include "rt.h"

int main(unsigned cpu, unsigned ncpus)
{
	(void)cpu;
	(void)ncpus;
	wrmsr(0x40001000u, 0x1122334455667788ull);
	uint64_t a = rdmsr(0x40001000u);
	uint64_t b = rdmsr(0x400010ffu);
	printf("msr 0x40001000: %lx\n", (unsigned long)a);
	printf("msr 0x400010ff: %lx\n", (unsigned long)b);
	uint64_t c;
	if (rdmsr_safe(0x40002000u, &c) < 0)
		puts("msr 0x40002000: gp\n");
	else
		printf("msr 0x40002000: %lx\n", (unsigned long)c);
	return 0;
}
