/* ud: an invalid opcode (#UD, a fault): reported through the fault-report
 * port; when the report is consumed the runtime ends with exit(0x46). */
#include "rt.h"

int main(unsigned cpu, unsigned ncpus)
{
	(void)cpu;
	(void)ncpus;
	puts("ud2\n");
	__asm__ volatile("ud2" : : : "memory");
	puts("ud2 returned\n"); /* not reached */
	return 0x7f;
}
