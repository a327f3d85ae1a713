/*
 * bench_io: the guest of the exit-path benchmark (bench/exitpath). One
 * source, built twice: as an ELF64 guest (bench_io.elf, run at CPL3 with
 * --cpu-mode user or at CPL0 with --cpu-mode long) and as a multiboot v1
 * guest (bench_io.mb, 32-bit protected mode at CPL0), so that the same
 * program runs under vmmux, under the raw KVM loop of bench/rawkvm and
 * under QEMU (-kernel, with -device pc-testdev, whose port 0xe0 and MMIO
 * page 0xff000000 QEMU handles in its own process).
 *
 * It times itself with the TSC, so that start-up and teardown never count:
 * for each phase, BENCH_N accesses, each between two RDTSCs, then one line
 * on the console (COM1)
 *   bench PHASE n=N p50=C p99=C min=C total=C
 * in TSC cycles: the median, 99th percentile and minimum of the per-access
 * time and the whole loop's time. Phases, in order:
 *   null    nothing between the two RDTSCs: the cost of timing itself
 *   out     OUTL to port 0xe0 (a write: a posted route need not wait)
 *   in      INL from port 0xe0 (a read: the guest waits for the value)
 *   mmiow   32-bit write to 0xff000000
 *   mmior   32-bit read from 0xff000000
 * then "bench done" and exit(0) (status 1). Built with -DBENCH_HOLD
 * (bench_hold.elf), it instead reads port 0xe0 forever, so that a
 * benchmark can look at the running VMM processes (and then kills them).
 */
#include "rt.h"
#ifndef __x86_64__
#include "multiboot.h"
#endif

#ifndef BENCH_N
#define BENCH_N 2000
#endif
#define BENCH_PORT 0xe0u
#define BENCH_MMIO 0xff000000u

static uint32_t lat[BENCH_N];

static inline uint64_t tsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi) : : "memory");
	return (uint64_t)hi << 32 | lo;
}

/*
 * Put the K-th smallest of A[LO..HI] at A[K], smaller ones before it and
 * larger ones after (Hoare's selection, iterative): a few times N
 * comparisons, where a sort would cost N log N instructions that are each
 * emulated at CPL0.
 */
static void select_kth(uint32_t *a, unsigned lo, unsigned hi, unsigned k)
{
	while (lo < hi) {
		uint32_t pivot = a[lo + (hi - lo) / 2];
		unsigned i = lo, j = hi;
		while (i <= j) {
			while (a[i] < pivot)
				i++;
			while (a[j] > pivot)
				j--;
			if (i <= j) {
				uint32_t t = a[i];
				a[i] = a[j];
				a[j] = t;
				i++;
				if (j == 0)
					break;
				j--;
			}
		}
		if (k <= j)
			hi = j;
		else if (k >= i)
			lo = i;
		else
			return;
	}
}

enum phase { PH_NULL, PH_OUT, PH_IN, PH_MMIOW, PH_MMIOR };
static const char *const phase_name[] = {"null", "out", "in", "mmiow", "mmior"};

static void run_phase(enum phase p)
{
	volatile uint32_t sink = 0;
	uint64_t start = tsc();
	for (unsigned i = 0; i < BENCH_N; i++) {
		uint64_t t0 = tsc();
		switch (p) {
		case PH_NULL:
			break;
		case PH_OUT:
			outl(BENCH_PORT, i);
			break;
		case PH_IN:
			sink += inl(BENCH_PORT);
			break;
		case PH_MMIOW:
			mmio_write32(BENCH_MMIO, i);
			break;
		case PH_MMIOR:
			sink += mmio_read32(BENCH_MMIO);
			break;
		}
		uint64_t d = tsc() - t0;
		lat[i] = d > 0xffffffffu ? 0xffffffffu : (uint32_t)d;
	}
	uint64_t total = tsc() - start;
	(void)sink;
	uint32_t min = lat[0];
	for (unsigned i = 1; i < BENCH_N; i++)
		min = lat[i] < min ? lat[i] : min;
	const unsigned k50 = BENCH_N / 2, k99 = BENCH_N * 99u / 100u;
	select_kth(lat, 0, BENCH_N - 1, k50);
	if (k99 > k50)
		select_kth(lat, k50 + 1, BENCH_N - 1, k99);
	printf("bench %s n=%u p50=%u p99=%u min=%u total=%llu\n", phase_name[p], BENCH_N, lat[k50],
	       lat[k99], min, (unsigned long long)total);
}

static int bench(void)
{
#ifdef BENCH_HOLD
	for (;;)
		(void)inl(BENCH_PORT);
#endif
	puts("bench start\n");
	for (enum phase p = PH_NULL; p <= PH_MMIOR; p++)
		run_phase(p);
	puts("bench done\n");
	return 0;
}

#ifdef __x86_64__
int main(unsigned cpu, unsigned ncpus)
{
	(void)ncpus;
	if (cpu != 0)
		park();
	return bench();
}
#else
int main(uint32_t magic, const struct multiboot_info *mbi)
{
	(void)mbi;
	if (magic != MULTIBOOT_BOOTLOADER_MAGIC)
		return 0x2b;
	return bench();
}
#endif
