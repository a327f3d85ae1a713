/*
 * triple: boot 1 triple-faults (an IDT of limit 0, then ud2: #UD cannot be
 * delivered, nor the #GP and #DF that follow: shutdown); a later boot N
 * prints "boot N" and exits with code N. Boots are counted in the
 * persistent word at 0x9000. (ud2 rather than int3: KVM's emulator, which
 * runs guest CPL0 code on PVM hosts, cannot execute INT3 in long mode.)
 */
#include "rt.h"

struct __attribute__((packed)) idt_ptr {
	uint16_t limit;
	uint64_t base;
};

int main(unsigned cpu, unsigned ncpus)
{
	(void)cpu;
	(void)ncpus;
	uint32_t boots = ++*rt_persist;
	printf("boot %u\n", boots);
	if (boots != 1)
		return (int)boots;
	struct idt_ptr empty = {0, 0};
	__asm__ volatile("lidt %0\n\tud2" : : "m"(empty) : "memory");
	puts("no triple fault\n"); /* not reached */
	return 0x7f;
}
