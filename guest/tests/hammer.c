/*
 * hammer: the live-routing guest, for 2 vCPUs. vCPU i writes 0, 1, 2 ... to
 * port 0x90 + i (a 32-bit OUT each) until a read of port 0x92 returns
 * non-zero (checked every 16 writes), then publishes how many it wrote;
 * vCPU 0 waits for both and prints "hammer done N0 N1", exit code 0
 * (status 1). A test moves the route of 0x90-0x91 between VMMs meanwhile
 * and checks that every value arrived exactly once.
 */
#include "rt.h"

static volatile uint32_t written[2];
static volatile uint32_t done;

int main(unsigned cpu, unsigned ncpus)
{
	if (cpu > 1 || ncpus != 2) {
		if (cpu == 0)
			puts("hammer needs 2 vCPUs\n");
		return cpu == 0 ? 1 : 0;
	}
	uint32_t n = 0;
	for (;;) {
		for (int k = 0; k < 16; k++)
			outl(0x90 + cpu, n++);
		if (inl(0x92) != 0)
			break;
	}
	written[cpu] = n;
	atomic_fetch_add32(&done, 1);
	if (cpu != 0)
		park();
	while (done != 2)
		cpu_relax();
	printf("hammer done %u %u\n", written[0], written[1]);
	return 0;
}
