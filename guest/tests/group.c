/*
 * group: the guest of the load-aware routing tests (a route to a group of
 * VMMs, tests/integration/test_groups.py). Any number of vCPUs; meant for
 * --cpu-mode user, where its loops run natively and the writes come as fast
 * as the exits allow.
 *
 * In each phase every vCPU writes its index GROUP_N times to port 0x90
 * (32-bit OUTs), and vCPU 0 prints "group: vcpu 0 phase P done" after its
 * own writes; the vCPUs meet after each phase. group.elf has 2 phases.
 * group_wait.elf (-DGROUP_WAIT) has 3, and between two phases vCPU 0 prints
 * "group: waiting before phase P" and waits for one byte of input on the
 * UART, so that a test can act on a VMM in between. Before phase 2, once
 * vCPU 0 has its byte, vCPU 1 writes once to port 0x94, and vCPU 0 prints
 * "group: waiting again before phase 2" when vCPU 1 is about to and waits
 * for a second byte: a test that routes 0x94 to a VMM it has stopped holds
 * vCPU 1 there, with a request in flight at that VMM, and can send the
 * second byte once it sees that request in flight, for vCPU 0's phase 2 to
 * run meanwhile. At the end vCPU 0 prints "group done N" (N = the writes to 0x90
 * of all vCPUs) and exits with code 0 (status 1). Without input within the
 * bounded wait: "group: no input", exit code 2 (status 5).
 */
#include "rt.h"

#define GROUP_N 1000u
#ifdef GROUP_WAIT
#define PHASES 3u
#else
#define PHASES 2u
#endif

static volatile uint32_t met[PHASES];

/* Wait until every vCPU has reached meeting point I. */
static void meet(unsigned i, unsigned ncpus)
{
	atomic_fetch_add32(&met[i], 1);
	while (atomic_load32(&met[i]) < ncpus)
		cpu_relax();
}

#ifdef GROUP_WAIT
#define INPUT_ROUNDS 500000u /* LSR polls: 10 s to 25 s here */
#define COM1_RBR     0x3f8u
#define COM1_LSR     0x3fdu
#define LSR_DR	     0x01u

static volatile uint32_t go[PHASES + 1];
static volatile uint32_t holding;

/* One byte of input from the UART (polled, bounded): 0, or -1 without. */
static int input_byte(void)
{
	unsigned r = 0;
	while (r < INPUT_ROUNDS && !(inb(COM1_LSR) & LSR_DR))
		r++;
	if (r == INPUT_ROUNDS) {
		puts("group: no input\n");
		return -1;
	}
	(void)inb(COM1_RBR);
	return 0;
}

/* Before phase P (2 or 3): vCPU 0 waits for a byte of input, the others
 * for vCPU 0; before phase 2, vCPU 1 writes to 0x94 and vCPU 0 waits for a
 * second byte once vCPU 1 is about to. 0, or -1 without input. */
static int wait_phase(unsigned p, unsigned cpu, unsigned ncpus)
{
	if (cpu != 0) {
		while (!go[p])
			cpu_relax();
		if (p == 2 && cpu == 1) {
			holding = 1;
			outl(0x94, cpu);
		}
		return 0;
	}
	printf("group: waiting before phase %u\n", p);
	if (input_byte() < 0)
		return -1;
	go[p] = 1;
	if (p != 2)
		return 0;
	while (ncpus > 1 && !holding)
		cpu_relax();
	puts("group: waiting again before phase 2\n");
	return input_byte();
}
#endif

int main(unsigned cpu, unsigned ncpus)
{
	for (unsigned p = 1; p <= PHASES; p++) {
#ifdef GROUP_WAIT
		if (p > 1 && wait_phase(p, cpu, ncpus) < 0)
			return 2;
#endif
		for (unsigned i = 0; i < GROUP_N; i++)
			outl(0x90, cpu);
		if (cpu == 0)
			printf("group: vcpu 0 phase %u done\n", p);
		meet(p - 1, ncpus);
	}
	if (cpu != 0)
		park();
	printf("group done %u\n", PHASES * GROUP_N * ncpus);
	return 0;
}
