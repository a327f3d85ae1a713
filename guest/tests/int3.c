/* int3: a breakpoint trap reported through the fault-report port; when the
 * report is consumed the guest resumes after the int3 and exits 0x33. */
#include "rt.h"

int main(unsigned cpu, unsigned ncpus)
{
	(void)cpu;
	(void)ncpus;
	puts("int3\n");
	__asm__ volatile("int3" : : : "memory");
	puts("resumed\n");
	return 0x33;
}
