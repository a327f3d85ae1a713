/* poweroff: ACPI-style power-off, 0x2000 written to port 0x604 (16 bits);
 * exit 0x7e if the guest is still running afterwards. */
#include "rt.h"

int main(unsigned cpu, unsigned ncpus)
{
	(void)cpu;
	(void)ncpus;
	puts("poweroff\n");
	outw(0x604, 0x2000);
	for (unsigned i = 0; i < 100000u; i++)
		cpu_relax();
	return 0x7e;
}
