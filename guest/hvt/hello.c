/*
 * hello.c: the hvt test guest without devices. argv[1] picks the test:
 *   (none)          "Hello, world", the arguments, exit 0
 *   cmdline         as Solo5's test_hello: puts of the command line where
 *                   the host wrote it (the boot information's pointer, in
 *                   the low memory that is read-only to the guest)
 *   exit N          exit with status N
 *   abort           halt with 255, as solo5_abort does
 *   dumpabort       dump_marker set, then halt with 255 (no trap frame)
 *   dumptrap        dump_marker set, then halt with 255 and a trap frame
 *                   whose rip is trap_site (as Solo5's trap handler does)
 *   bootinfo        print the boot information and check its invariants
 *   walltime        two readings, increasing and after 2020
 *   poll NS         poll with no device: ret, ready set, time waited (ms)
 *   badputs [1]     puts of a string outside guest memory (host ends: 1);
 *                   with 1, a string whose first 4 KiB lie inside guest
 *                   memory and whose end does not (nothing may be written)
 *   badarg NR       hypercall NR with its struct outside guest memory (1)
 *   writecode       write to its own code (translation fault: 1)
 *   writerodata     write to its read-only data (the same)
 *   port            IN from port 0x3f8: not a hypercall (1)
 *   badcall NR      hypercall NR, which does not exist (1)
 *   out16           a 16-bit OUT to a hypercall port (1)
 *   hlt             execute HLT
 *   spin MS         busy for MS milliseconds of TSC time, then exit 0
 */
#include "hvt_rt.h"

static const char rodata_word[16] = "read-only";

/* Read back from a core file by gdb (dumpabort, dumptrap). */
volatile uint64_t dump_marker;

/* The rip of dumptrap's trap frame. */
__attribute__((noinline)) void trap_site(void)
{
	__asm__ volatile("" ::: "memory");
}

static int cmd_bootinfo(void)
{
	const struct hvt_boot_info *bi = hvt_bi;
	const struct hvt_mft *m = (const struct hvt_mft *)(uintptr_t)bi->mft;
	printf("mem_size=%lu kernel_end=0x%lx freq=%lu cmdline=0x%lx mft=0x%lx entries=%u "
	       "features=%u/%u net_ring=%lu\n",
	       bi->mem_size, bi->kernel_end, bi->cpu_cycle_freq, bi->cmdline, bi->mft, m->entries,
	       bi->host_features, bi->guest_features, bi->net_ring);
	uint64_t rsp;
	__asm__ volatile("mov %%rsp, %0" : "=r"(rsp));
	int ok = bi->kernel_end % 4096 == 0 && bi->kernel_end > 0x100000 &&
		 bi->kernel_end < bi->mem_size && bi->cpu_cycle_freq > 0 &&
		 m->e[0].type == HVT_MFT_RESERVED_FIRST && rsp < bi->mem_size &&
		 rsp > bi->mem_size - 0x10000;
	printf("bootinfo %s\n", ok ? "ok" : "BAD");
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";
	uint64_t arg = argc > 2 ? hvt_atou(argv[2]) : 0;
	if (cmd[0] == '\0' || strcmp(cmd, "hello") == 0) {
		printf("Hello, world\n");
		for (int i = 1; i < argc; i++)
			printf("arg %d: %s\n", i, argv[i]);
		return 0;
	}
	if (strcmp(cmd, "cmdline") == 0) {
		const char *cl = (const char *)(uintptr_t)hvt_bi->cmdline;
		printf("Hello, World\nCommand line is: '");
		hvt_puts(cl, strlen(cl));
		printf("'\n");
		return 0;
	}
	if (strcmp(cmd, "exit") == 0)
		return (int)arg;
	if (strcmp(cmd, "abort") == 0) {
		printf("aborting\n");
		hvt_halt(255);
	}
	if (strcmp(cmd, "dumpabort") == 0 || strcmp(cmd, "dumptrap") == 0) {
		dump_marker = 0x5eedc0de12345678ull;
		uint64_t rsp;
		__asm__ volatile("mov %%rsp, %0" : "=r"(rsp));
		static uint64_t frame[7];
		frame[2] = (uint64_t)(uintptr_t)&trap_site; /* rip */
		frame[3] = HVT_SEL_CODE;
		frame[4] = 0x2; /* rflags */
		frame[5] = rsp;
		frame[6] = HVT_SEL_DATA;
		printf("aborting\n");
		hvt_halt_cookie(255, cmd[4] == 't' ? frame : NULL);
	}
	if (strcmp(cmd, "bootinfo") == 0)
		return cmd_bootinfo();
	if (strcmp(cmd, "walltime") == 0) {
		uint64_t a = hvt_walltime(), b = hvt_walltime();
		int ok = a > 1577836800ull * 1000000000ull && b >= a;
		printf("walltime %lu %s\n", a, ok ? "ok" : "BAD");
		return ok ? 0 : 1;
	}
	if (strcmp(cmd, "poll") == 0) {
		uint64_t ready = 99, t0 = hvt_walltime();
		int r = hvt_poll(arg, &ready);
		uint64_t t1 = hvt_walltime();
		printf("poll ret=%d ready=%lu waited_ms=%lu\n", r, ready, (t1 - t0) / 1000000);
		return 0;
	}
	if (strcmp(cmd, "badputs") == 0) {
		volatile struct hvt_hc_puts a = {.data = hvt_bi->mem_size - 4, .len = 16};
		if (arg == 1) {
			a.data = hvt_bi->mem_size - 4100;
			a.len = 8192;
		}
		hvt_call(HVT_HC_PUTS, &a);
		printf("badputs returned\n");
		return 0;
	}
	if (strcmp(cmd, "badarg") == 0) {
		hvt_call_raw((unsigned)arg, (uint32_t)(hvt_bi->mem_size - 4));
		printf("badarg returned\n");
		return 0;
	}
	if (strcmp(cmd, "writecode") == 0) {
		printf("writing to code\n");
		*(volatile uint8_t *)(uintptr_t)&main = 0x90;
		printf("code write returned\n");
		return 0;
	}
	if (strcmp(cmd, "writerodata") == 0) {
		*(volatile char *)(uintptr_t)rodata_word = 'R';
		printf("rodata write returned\n");
		return 0;
	}
	if (strcmp(cmd, "port") == 0) {
		uint8_t v;
		__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"((uint16_t)0x3f8));
		printf("port read returned %u\n", v);
		return 0;
	}
	if (strcmp(cmd, "badcall") == 0) {
		volatile struct hvt_hc_walltime a = {0};
		hvt_call((unsigned)arg, &a);
		printf("badcall returned\n");
		return 0;
	}
	if (strcmp(cmd, "out16") == 0) {
		__asm__ volatile("outw %0, %1" : : "a"((uint16_t)0), "d"((uint16_t)HVT_HC_PORT(1)));
		printf("out16 returned\n");
		return 0;
	}
	if (strcmp(cmd, "hlt") == 0) {
		__asm__ volatile("hlt");
		printf("hlt returned\n");
		return 3;
	}
	if (strcmp(cmd, "spin") == 0) {
		uint64_t end = hvt_monotonic_ns() + arg * 1000000ull;
		while (hvt_monotonic_ns() < end)
			;
		return 0;
	}
	printf("unknown test '%s'\n", cmd);
	return 2;
}
