/*
 * snapseq: the snapshot guest. SNAPSEQ_N steps; at each step it changes its
 * memory (a 256 KiB array), folds a 1 KiB slice of it into a running
 * checksum and prints "snap NNNNN CCCCCCCC". With a second vCPU (ELF64, 2
 * vCPUs) that vCPU does the same over its own array, ahead of vCPU 0,
 * and vCPU 0's line for a step also carries vCPU 1's checksum at that step ("snap NNNNN CCCCCCCC
 * DDDDDDDD"), so the output is the same on every run. The TSC is read at every step: a value below
 * the previous one prints "tsc went back" (a restore that broke the guest's time). Ends with
 * "snapseq done" and exit code 0. Built as snapseq.elf (ELF64, long mode at CPL0 or, with
 * --cpu-mode user, CPL3) and snapseq.mb (multiboot, 32-bit protected mode at CPL0).
 */
#include "rt.h"

#ifndef SNAPSEQ_N
#define SNAPSEQ_N 600
#endif
#define WORDS (64u * 1024u)
#define SLICE 256u

static uint32_t area[2][WORDS];
static volatile uint32_t step_done[2];	   /* [1]: steps vCPU 1 has done */
static volatile uint32_t sums1[SNAPSEQ_N]; /* vCPU 1's checksum at each step */

static uint64_t tsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

/* One step of vCPU CPU over its array; returns the new checksum. */
static uint32_t step(unsigned cpu, uint32_t i, uint32_t sum)
{
	uint32_t *a = area[cpu];
	a[(i * 2654435761u) % WORDS] ^= i * 31u + 7u + cpu;
	a[(i * 40503u + 17u) % WORDS] += sum;
	for (uint32_t k = 0; k < SLICE; k++)
		sum = sum * 31u + a[(i * SLICE + k) % WORDS];
	return sum;
}

static int run(unsigned cpu, unsigned ncpus)
{
	uint32_t sum = 0;
	uint64_t last = 0;
	bool back = false;
	for (uint32_t i = 0; i < SNAPSEQ_N; i++) {
		sum = step(cpu, i, sum);
		uint64_t t = tsc();
		if (t < last && !back) {
			printf("tsc went back at step %u\n", (unsigned)i);
			back = true;
		}
		last = t;
		if (cpu != 0) {
			sums1[i] = sum;
			__atomic_store_n(&step_done[1], i + 1, __ATOMIC_RELEASE);
			continue;
		}
		if (ncpus > 1) {
			while (__atomic_load_n(&step_done[1], __ATOMIC_ACQUIRE) < i + 1)
				__asm__ volatile("pause");
			printf("snap %05u %08x %08x\n", (unsigned)i, (unsigned)sum,
			       (unsigned)sums1[i]);
		} else {
			printf("snap %05u %08x\n", (unsigned)i, (unsigned)sum);
		}
	}
	if (cpu != 0)
		for (;;)
			__asm__ volatile("pause");
	puts("snapseq done\n");
	return 0;
}

#ifdef __x86_64__
int main(unsigned cpu, unsigned ncpus)
{
	if (cpu >= 2) /* two vCPUs at most take part */
		for (;;)
			__asm__ volatile("pause");
	return run(cpu, ncpus > 2 ? 2 : ncpus);
}
#else
int main(uint32_t magic, const struct multiboot_info *mbi)
{
	(void)magic;
	(void)mbi;
	return run(0, 1);
}
#endif
