/*
 * gdbt (gdbt.elf: long mode at CPL0; mb_gdbt.mb: 32-bit protected mode,
 * multiboot): the guest of the GDB stub's tests, built with debug info.
 * tick(i) adds i to the global counter, for i = 1..5; then, while the
 * global spin is non-zero (a debugger sets it), the guest spins in
 * spin_wait() until the debugger clears it. main returns counter + poke
 * (a debugger may write poke): 15 when nobody touched anything, so the
 * run's status is 31 ((15 << 1) | 1). In long mode the other vCPUs (--cpus)
 * call other(cpu), which adds cpu to the global others, and then execute
 * HLT for good; vCPU 0 ends the run once every other(cpu) is done.
 */
#include "multiboot.h"
#include "rt.h"

volatile unsigned counter;
volatile unsigned poke;
#ifdef GDBT_SPIN
volatile unsigned spin = 1; /* gdbt_spin.elf: spins until a debugger clears it */
#else
volatile unsigned spin;
#endif
volatile unsigned others; /* what the other vCPUs added */

__attribute__((noinline)) void tick(unsigned i)
{
	counter += i;
}

__attribute__((noinline)) void other(unsigned cpu)
{
	__atomic_fetch_add(&others, cpu, __ATOMIC_SEQ_CST); /* vCPUs run it at once */
}

__attribute__((noinline)) void spin_wait(void)
{
	while (spin)
		__asm__ volatile("pause");
}

#ifdef __x86_64__
int main(unsigned cpu, unsigned ncpus)
{
	if (cpu != 0) { /* the other vCPUs: other(cpu), then HLT for good */
		other(cpu);
		for (;;)
			__asm__ volatile("hlt");
	}
#else
int main(uint32_t magic, const struct multiboot_info *mbi)
{
	(void)magic;
	(void)mbi;
#endif
	for (unsigned i = 1; i <= 5; i++)
		tick(i);
	spin_wait();
#ifdef __x86_64__
	/* the end waits for the other vCPUs' other(cpu) */
	while (others != ncpus * (ncpus - 1) / 2)
		__asm__ volatile("pause");
#endif
	return (int)(counter + poke);
}
