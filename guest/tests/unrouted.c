/*
 * unrouted: reads and writes a port (0x1234) and an MMIO address
 * (0xe0000000) that nothing routes: reads must give all ones. Exits 0, or
 * the number (1-4) of the first read that did not.
 */
#include "rt.h"

#define PORT 0x1234u
#define ADDR 0xe0000000u

static unsigned check(unsigned n, const char *what, uint32_t got, uint32_t want, unsigned first)
{
	printf("%s: %x %s\n", what, got, got == want ? "ok" : "FAIL");
	return first == 0 && got != want ? n : first;
}

int main(unsigned cpu, unsigned ncpus)
{
	(void)cpu;
	(void)ncpus;
	unsigned first = 0;
	first = check(1, "in8 0x1234", inb(PORT), 0xffu, first);
	first = check(2, "in16 0x1234", inw(PORT), 0xffffu, first);
	first = check(3, "in32 0x1234", inl(PORT), 0xffffffffu, first);
	first = check(4, "mmio32 0xe0000000", mmio_read32(ADDR), 0xffffffffu, first);
	outb(PORT, 0x5a);
	puts("out8 0x1234: done\n");
	mmio_write32(ADDR, 0x12345678u);
	puts("mmio32 write 0xe0000000: done\n");
	return (int)first;
}
