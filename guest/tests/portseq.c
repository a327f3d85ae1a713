/*
 * portseq: numbered values over a port range, for tests that change the
 * range's route while the guest runs (the control API's routes.replace,
 * vmm.swap). Writes 0, 1, 2 ... as 32-bit OUTs, value i to port
 * 0x80 + (i % 8), with a short pause between writes; after every 64 values
 * it reads port 0x88 (8 bits) and stops when the read is non-zero. Then it
 * prints "portseq N\n" (N values written) and exits with code 0 (status 1).
 * Bounded: after PORTSEQ_MAX values it prints "portseq limit N\n" and exits
 * with code 1 (status 3).
 */
#include "rt.h"

#define PORTSEQ_BASE  0x80
#define PORTSEQ_PORTS 8
#define PORTSEQ_GATE  0x88
#define PORTSEQ_MAX   4000000u /* about a minute here */
#define PORTSEQ_PAUSE 32       /* pauses between two writes */

int main(unsigned cpu, unsigned ncpus)
{
	(void)cpu;
	(void)ncpus;
	uint32_t n = 0;
	for (;;) {
		if (n == PORTSEQ_MAX) {
			printf("portseq limit %u\n", n);
			return 1;
		}
		outl(PORTSEQ_BASE + (n % PORTSEQ_PORTS), n);
		n++;
		for (int k = 0; k < PORTSEQ_PAUSE; k++)
			cpu_relax();
		if (n % 64 == 0 && inb(PORTSEQ_GATE) != 0)
			break;
	}
	printf("portseq %u\n", n);
	return 0;
}
