/*
 * reset: resets through both chipset paths, counting boots in the
 * persistent word at 0x9000: boot 1 writes 0x06 to 0xcf9, boot 2 writes the
 * i8042 command 0xfe to 0x64, boot 3 exits with code 3. A reset that does
 * not happen within a bounded spin ends the run with code 0x70 | boot.
 */
#include "rt.h"

#define RESET_SPIN 100000u

int main(unsigned cpu, unsigned ncpus)
{
	(void)cpu;
	(void)ncpus;
	uint32_t boots = ++*rt_persist;
	printf("boot %u\n", boots);
	switch (boots) {
	case 1:
		outb(0xcf9, 0x06);
		break;
	case 2:
		outb(0x64, 0xfe);
		break;
	default:
		return (int)boots;
	}
	for (unsigned i = 0; i < RESET_SPIN; i++)
		cpu_relax();
	puts("no reset\n");
	return (int)(0x70u | boots);
}
