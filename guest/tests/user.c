/* user: run with --cpu-mode user: checks that it runs at CPL3. */
#include "rt.h"

int main(unsigned cpu, unsigned ncpus)
{
	(void)cpu;
	(void)ncpus;
	if (cpl() != 3) {
		printf("not cpl3 (cpl %u)\n", cpl());
		return 1;
	}
	puts("cpl3 ok\n");
	return 0;
}
