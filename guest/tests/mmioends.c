/*
 * mmioends: the ends of two adjacent routed MMIO ranges, A =
 * 0xd0000000-0xd0000fff and B = 0xd0001000-0xd0001fff: the byte before A,
 * the first and the last byte of A, the first and the last byte of B, and
 * the byte after B. At each address an 8-bit write of the probe's number
 * (1..6), then an 8-bit read, printed as "mmio ADDR: XX". Exit code 0.
 */
#include "rt.h"

static const uintptr_t probes[] = {0xcfffffffu, 0xd0000000u, 0xd0000fffu,
				   0xd0001000u, 0xd0001fffu, 0xd0002000u};

int main(unsigned cpu, unsigned ncpus)
{
	(void)cpu;
	(void)ncpus;
	for (unsigned i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		mmio_write8(probes[i], (uint8_t)(i + 1));
		printf("mmio %lx: %02x\n", (unsigned long)probes[i], mmio_read8(probes[i]));
	}
	return 0;
}
