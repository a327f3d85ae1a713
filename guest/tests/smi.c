/* smi: an APM SMI (command 0x42 to port 0xb2), then reads the status port
 * 0xb3 and exits with the value read. */
#include "rt.h"

int main(unsigned cpu, unsigned ncpus)
{
	(void)cpu;
	(void)ncpus;
	outb(0xb2, 0x42);
	uint8_t s = inb(0xb3);
	printf("apm status %u\n", s);
	return s;
}
