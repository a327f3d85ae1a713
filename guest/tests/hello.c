/* hello: prints one line and exits with code 0 (vmmux status 1). */
#include "rt.h"

int main(unsigned cpu, unsigned ncpus)
{
	(void)cpu;
	(void)ncpus;
	puts("hello from vmmux\n");
	return 0;
}
