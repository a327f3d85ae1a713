/* hlt: one HLT with interrupts disabled between two lines; exit 0x11. */
#include "rt.h"

int main(unsigned cpu, unsigned ncpus)
{
	(void)cpu;
	(void)ncpus;
	puts("before hlt\n");
	cli();
	hlt();
	puts("after hlt\n");
	return 0x11;
}
