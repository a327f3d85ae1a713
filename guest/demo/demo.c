/*
 * demo: raises a privileged event of every type and narrates each on the
 * console in one short line. The boot number is counted in the persistent
 * word at 0x9000 (vmmux never writes that page, not even on reset).
 *
 *   boot 1: port I/O (the console), MMIO, MSR, hypercall, HLT, a breakpoint
 *           exception (reported through 0x4f0 by rt_report_breakpoint: an
 *           INT3 instruction cannot run at CPL0 on a host that emulates
 *           guest kernel code, see rt.h), SMI, an unrouted port read, then
 *           a reset through 0xcf9;
 *   boot 2: a triple fault (an empty IDT, then ud2: #UD, #GP, #DF,
 *           shutdown; the monitor answers the shutdown event with reset);
 *   boot 3: power-off through 0x604 (vmmux exit status 0).
 *
 * If an expected reset or power-off does not happen within a bounded spin,
 * the run ends with exit(0x70 | boot).
 */
#include "rt.h"

#define SPIN 100000u

struct hc_arg {
	uint64_t a, b;
};

__attribute__((aligned(16))) static volatile struct hc_arg demo_hc_arg = {.a = 0xde, .b = 0x30};

struct __attribute__((packed)) idt_ptr {
	uint16_t limit;
	uint64_t base;
};

static void spin(void)
{
	for (unsigned i = 0; i < SPIN; i++)
		cpu_relax();
}

static void boot1(void)
{
	puts("demo boot 1: port I/O: this text goes out through the uart on 0x3f8\n");

	mmio_write32(0xd0000000u, 0xcafef00du);
	uint32_t m = mmio_read32(0xd0000000u);
	printf("mmio: wrote 0xcafef00d to 0xd0000000, read 0x%x\n", m);

	wrmsr(0x40001000u, 0x1122334455667788ull);
	uint64_t v = rdmsr(0x40001000u);
	printf("msr: wrote 0x1122334455667788 to 0x40001000, read 0x%lx\n", (unsigned long)v);

	outl(RT_HCALL_BASE + 1, (uint32_t)(uintptr_t)&demo_hc_arg);
	printf("hypercall 1: argument at %p sent\n", (void *)&demo_hc_arg);

	cli();
	hlt();
	puts("hlt: halted and resumed\n");

	rt_report_breakpoint();
	puts("exception: breakpoint (#BP) reported through 0x4f0, resumed\n");

	outb(0xb2, 0x42);
	printf("smi: command 0x42 on 0xb2, apm status %u\n", inb(0xb3));

	printf("unrouted: in 0x1234 gives 0x%x\n", inb(0x1234));

	puts("reset: writing 0x06 to 0xcf9\n");
	outb(0xcf9, 0x06);
}

static void boot2(void)
{
	puts("boot 2: triple fault\n");
	struct idt_ptr empty = {0, 0};
	__asm__ volatile("lidt %0\n\tud2" : : "m"(empty) : "memory");
}

static void boot3(void)
{
	puts("boot 3: power off through 0x604\n");
	outw(0x604, 0x2000);
}

int main(unsigned cpu, unsigned ncpus)
{
	(void)ncpus;
	if (cpu != 0)
		park();
	uint32_t boot = ++*rt_persist;
	switch (boot) {
	case 1:
		boot1();
		break;
	case 2:
		boot2();
		break;
	case 3:
		boot3();
		break;
	default:
		printf("boot %u: unexpected\n", boot);
		return 0x70 | (int)boot;
	}
	spin();
	printf("boot %u: the expected reset or power-off did not happen\n", boot);
	return 0x70 | (int)boot;
}
