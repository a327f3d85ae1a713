/*
 * compiled: the guest of the routes compiled into KVM (docs/routing.md,
 * "Routes compiled into KVM"). Run at CPL3 (--cpu-mode user), where its
 * writes reach KVM without the emulator. Ports and addresses, with the
 * routes the tests give them:
 *
 *   0x520-0x527        coalesced  32-bit OUTs of 0, 1, 2 ... to 0x520
 *   0xd0000000+0x1000  coalesced  32-bit writes of 0x1000+i to 0xd0000000+4*(i%8)
 *   0x510              doorbell   8-bit OUTs of i (the value is lost)
 *   0xd0001000+4       doorbell=1 32-bit writes of 1 (they signal), then
 *                                 COMPILED_MISS writes of 2 (they do not
 *                                 match: they exit, routed as usual)
 *
 * Default build: COMPILED_N writes of each kind, in that order; after the
 * coalesced port writes an IN from 0x524, after the coalesced MMIO writes a
 * read of 0xd0000800 (a read on a coalesced route is an exit, after which
 * every earlier write has reached its VMM, and KVM's ring of 169 entries is
 * empty again: COMPILED_N writes fit it whatever the drain's timing); then
 * "compiled done\n", exit code 0.
 *
 * -DCOMPILED_LOOP (compiled_loop): until an IN from 0x92 reads non-zero
 * (checked every 32 rounds; the test's route for it changes to make it so),
 * a round writes its number to port 0x520 (coalesced) and rings 0x510
 * (doorbell); then "compiled loop N\n" (N rounds), exit code 0.
 *
 * -DCOMPILED_BENCH (compiled_bench, for bench/): COMPILED_BENCH_N 8-bit OUTs
 * to 0x510 timed with the TSC, then the same number to 0x90, then prints
 * "doorbell N cycles C\nexit N cycles C\n"; exit code 0. With
 * io:0x510=X;doorbell the first loop makes no userspace exit; with
 * io:0x90=X the second makes one per OUT.
 */
#include "rt.h"

#ifndef COMPILED_N
#define COMPILED_N 100
#endif
#ifndef COMPILED_MISS
#define COMPILED_MISS 3
#endif
#ifndef COMPILED_BENCH_N
#define COMPILED_BENCH_N 20000
#endif

#define CO_PORT	  0x520
#define CO_MMIO	  0xd0000000ul
#define DB_PORT	  0x510
#define DB_MMIO	  0xd0001000ul
#define STOP_PORT 0x92

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

int main(unsigned cpu, unsigned ncpus)
{
	(void)cpu;
	(void)ncpus;
#if defined(COMPILED_BENCH)
	uint64_t t0 = rdtsc();
	for (unsigned i = 0; i < COMPILED_BENCH_N; i++)
		outb(DB_PORT, (uint8_t)i);
	uint64_t t1 = rdtsc();
	for (unsigned i = 0; i < COMPILED_BENCH_N; i++)
		outb(0x90, (uint8_t)i);
	uint64_t t2 = rdtsc();
	printf("doorbell %u cycles %lu\nexit %u cycles %lu\n", COMPILED_BENCH_N,
	       (unsigned long)(t1 - t0), COMPILED_BENCH_N, (unsigned long)(t2 - t1));
#elif defined(COMPILED_LOOP)
	unsigned n = 0;
	for (;;) {
		outl(CO_PORT, n);
		outb(DB_PORT, 1);
		n++;
		if (n % 32 == 0 && inb(STOP_PORT) != 0)
			break;
	}
	printf("compiled loop %u\n", n);
#else
	for (unsigned i = 0; i < COMPILED_N; i++)
		outl(CO_PORT, i);
	(void)inl(CO_PORT + 4); /* after it, the ring is empty again */
	for (unsigned i = 0; i < COMPILED_N; i++)
		mmio_write32(CO_MMIO + 4 * (i % 8), 0x1000 + i);
	(void)mmio_read32(CO_MMIO + 0x800);
	for (unsigned i = 0; i < COMPILED_N; i++)
		outb(DB_PORT, (uint8_t)i);
	for (unsigned i = 0; i < COMPILED_N; i++)
		mmio_write32(DB_MMIO, 1);
	for (unsigned i = 0; i < COMPILED_MISS; i++)
		mmio_write32(DB_MMIO, 2);
	puts("compiled done\n");
#endif
	return 0;
}
