/*
 * io: port I/O of every width to port 0x80 and string I/O to port 0x81,
 * printing what the reads returned.
 */
#include "rt.h"

static const char pattern[16] = "0123456789abcdef";

int main(unsigned cpu, unsigned ncpus)
{
	(void)cpu;
	(void)ncpus;
	outb(0x80, 0x12);
	outw(0x80, 0x1234);
	outl(0x80, 0x12345678);
	uint8_t b = inb(0x80);
	uint16_t w = inw(0x80);
	uint32_t l = inl(0x80);
	printf("in 0x80: %x %x %x\n", b, w, l);

	outsb(0x81, pattern, sizeof(pattern));
	uint8_t buf[8];
	insb(0x81, buf, sizeof(buf));
	puts("insb 0x81:");
	for (unsigned i = 0; i < sizeof(buf); i++)
		printf(" %02x", buf[i]);
	puts("\n");
	return 0;
}
