/* mmio: MMIO writes of 8, 32 and 64 bits and one 32-bit read at 0xd0000000. */
#include "rt.h"

#define BASE 0xd0000000u

int main(unsigned cpu, unsigned ncpus)
{
	(void)cpu;
	(void)ncpus;
	mmio_write32(BASE, 0xcafef00du);
	mmio_write8(BASE + 0xffc, 0x5a);
	mmio_write64(BASE + 8, 0x0123456789abcdefull);
	uint32_t v = mmio_read32(BASE + 4);
	printf("mmio read 0xd0000004: %x\n", v);
	return 0;
}
