/*
 * hypercall: hypercalls 1 and 2 (32-bit OUT to 0x501 and 0x502), EAX = the
 * guest-physical address of hc_arg (a global: `nm hypercall.elf` gives it).
 */
#include "rt.h"

struct hc_arg {
	uint64_t a, b;
};

__attribute__((aligned(16))) volatile struct hc_arg hc_arg = {.a = 0x1111, .b = 0x2222};

int main(unsigned cpu, unsigned ncpus)
{
	(void)cpu;
	(void)ncpus;
	outl(RT_HCALL_BASE + 1, (uint32_t)(uintptr_t)&hc_arg);
	outl(RT_HCALL_BASE + 2, (uint32_t)(uintptr_t)&hc_arg);
	puts("hypercalls done\n");
	return 0;
}
