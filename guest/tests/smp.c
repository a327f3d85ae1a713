/*
 * smp (2 vCPUs): vCPU i writes its index 1000 times to port 0x90 + i, then
 * counts itself done; vCPU 0 waits for every vCPU, prints "smp done N" and
 * exits 0. The other vCPUs park (spin) once done.
 */
#include "rt.h"

#define WRITES 1000u

static volatile uint32_t done;

int main(unsigned cpu, unsigned ncpus)
{
	for (unsigned i = 0; i < WRITES; i++)
		outb((uint16_t)(0x90u + cpu), (uint8_t)cpu);
	atomic_fetch_add32(&done, 1);
	if (cpu != 0)
		park();
	while (atomic_load32(&done) < ncpus)
		cpu_relax();
	printf("smp done %u\n", ncpus);
	return 0;
}
