/*
 * rawkvm: the smallest KVM loop that runs the benchmark guests, the physical
 * limit of an exit on this host against which vmmux's exit path is measured
 * (bench/exitpath).
 *
 * It loads the image and sets up the vCPU exactly as vmmux does (the same
 * loader and cpu_setup code, so the guest runs the same instructions in the
 * same CPU mode), then runs one vCPU and handles every exit inline, with no
 * event, no routing table and no statistics:
 *   OUT 0x3f8          the byte to stdout (the guest's console)
 *   IN  0x3f8-0x3ff    0x60 at +5 (LSR: transmitter empty), else 0
 *   OUT 0xf4           end with status ((V << 1) | 1) & 0xff, as
 *                      isa-debug-exit does
 *   any other IN/MMIO read   0; any other OUT/MMIO write   dropped
 *   HLT                end with status 0
 * With --doorbell, KVM_IOEVENTFD is registered for 4-byte writes to port
 * 0xe0 and to MMIO 0xff000000 (bench_io's device), so that those writes
 * never leave KVM: the limit of routing compiled into KVM.
 *
 * With --record FILE, every port-I/O and MMIO exit of that device is also
 * appended to FILE as a struct rec_exit (record.h), for bench/replay.
 *
 * Usage: rawkvm [--cpu-mode long|user|protected] [--mem MIB] [--doorbell]
 *               [--record FILE] KERNEL
 *        rawkvm --tsc-hz     print the TSC frequency (calibrated against
 *                            CLOCK_MONOTONIC over 200 ms) and exit
 * Exit status: the guest's (see above), or 70 on a setup error or an exit it
 * does not model (message on stderr).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "loader/loader.h"
#include "record.h"
#include "vm/cpu_setup.h"

#define RAW_FAIL	 70
#define CPUID_ENTRIES	 256
#define BENCH_PORT	 0xe0u
#define BENCH_MMIO	 0xff000000ull
#define IMAGE_MAX	 (64u << 20)
#define TSC_CALIBRATE_NS 200000000ull

static int fail(const char *what)
{
	fprintf(stderr, "rawkvm: %s: %s\n", what, strerror(errno));
	return RAW_FAIL;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int print_tsc_hz(void)
{
	uint64_t t0 = now_ns(), c0 = __builtin_ia32_rdtsc();
	while (now_ns() - t0 < TSC_CALIBRATE_NS)
		;
	uint64_t t1 = now_ns(), c1 = __builtin_ia32_rdtsc();
	printf("%.0f\n", (double)(c1 - c0) * 1e9 / (double)(t1 - t0));
	return 0;
}

static int doorbell(int vm, uint64_t addr, uint32_t flags)
{
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (efd < 0)
		return fail("eventfd");
	struct kvm_ioeventfd io = {.addr = addr, .len = 4, .fd = efd, .flags = flags};
	if (ioctl(vm, KVM_IOEVENTFD, &io) < 0)
		return fail("KVM_IOEVENTFD");
	return 0;
}

static FILE *record_file;

/* Append the exit in RUN to the record file (before it is handled). */
static void record(const struct kvm_run *run)
{
	struct rec_exit r = {.magic = REC_MAGIC, .exit_reason = run->exit_reason};
	if (run->exit_reason == KVM_EXIT_IO) {
		r.io_direction = run->io.direction;
		r.io_size = run->io.size;
		r.io_port = run->io.port;
		r.io_count = run->io.count;
		if (run->io.direction == KVM_EXIT_IO_OUT && run->io.size <= sizeof(r.data))
			memcpy(r.data, (const uint8_t *)run + run->io.data_offset, run->io.size);
	} else {
		r.mmio_addr = run->mmio.phys_addr;
		r.mmio_len = run->mmio.len;
		r.mmio_is_write = run->mmio.is_write;
		memcpy(r.data, run->mmio.data, sizeof(r.data));
	}
	fwrite(&r, sizeof(r), 1, record_file);
}

static void usage(void)
{
	fprintf(stderr, "usage: rawkvm [--cpu-mode long|user|protected] [--mem MIB] [--doorbell] "
			"[--record FILE] KERNEL\n       rawkvm --tsc-hz\n");
	exit(2);
}

int main(int argc, char **argv)
{
	enum cpu_mode mode = CPU_MODE_DEFAULT;
	unsigned long mem_mib = 64;
	bool use_doorbell = false;
	const char *kernel = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--tsc-hz") == 0)
			return print_tsc_hz();
		if (strcmp(argv[i], "--doorbell") == 0) {
			use_doorbell = true;
		} else if (strcmp(argv[i], "--cpu-mode") == 0 && i + 1 < argc) {
			int m = cpu_mode_parse(argv[++i]);
			if (m < 0) {
				fprintf(stderr, "rawkvm: --cpu-mode '%s': not a CPU mode\n",
					argv[i]);
				return 2;
			}
			mode = (enum cpu_mode)m;
		} else if (strcmp(argv[i], "--record") == 0 && i + 1 < argc) {
			record_file = fopen(argv[++i], "we");
			if (record_file == NULL) {
				fprintf(stderr, "rawkvm: --record '%s': %s\n", argv[i],
					strerror(errno));
				return 2;
			}
		} else if (strcmp(argv[i], "--mem") == 0 && i + 1 < argc) {
			char *end;
			mem_mib = strtoul(argv[++i], &end, 0);
			if (*end != '\0' || mem_mib < 1 || mem_mib > 4096) {
				fprintf(stderr, "rawkvm: --mem '%s': not 1 to 4096 (MiB)\n",
					argv[i]);
				return 2;
			}
		} else if (argv[i][0] != '-' && kernel == NULL) {
			kernel = argv[i];
		} else {
			usage();
		}
	}
	if (kernel == NULL)
		usage();

	struct errbuf e = {0};
	uint8_t *img;
	size_t len;
	if (loader_read_file(kernel, IMAGE_MAX, &img, &len, &e) != 0) {
		fprintf(stderr, "rawkvm: %s\n", e.msg);
		return RAW_FAIL;
	}
	struct guest_mem m = {.size = (uint64_t)mem_mib << 20, .memfd = -1};
	m.host = mmap(NULL, m.size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m.host == MAP_FAILED)
		return fail("mmap of guest RAM");
	struct load_opts lo = {.mode = mode, .cmdline = kernel};
	struct boot_image bi;
	if (loader_load(kernel, img, len, &lo, &m, &bi, &e) != 0 ||
	    cpu_setup_tables(&m, bi.mode, &e) != 0) {
		fprintf(stderr, "rawkvm: %s\n", e.msg);
		return RAW_FAIL;
	}
	free(img);

	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return fail("/dev/kvm");
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		return fail("KVM_CREATE_VM");
	(void)ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000ul); /* VMX real mode only */
	struct kvm_userspace_memory_region region = {.slot = 0,
						     .guest_phys_addr = 0,
						     .memory_size = m.size,
						     .userspace_addr = (uintptr_t)m.host};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return fail("KVM_SET_USER_MEMORY_REGION");
	if (use_doorbell && (doorbell(vm, BENCH_PORT, KVM_IOEVENTFD_FLAG_PIO) != 0 ||
			     doorbell(vm, BENCH_MMIO, 0) != 0))
		return RAW_FAIL;
	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0ul);
	if (vcpu < 0)
		return fail("KVM_CREATE_VCPU");
	struct kvm_cpuid2 *cpuid =
	    calloc(1, sizeof(*cpuid) + CPUID_ENTRIES * sizeof(struct kvm_cpuid_entry2));
	if (cpuid == NULL)
		return fail("calloc");
	cpuid->nent = CPUID_ENTRIES;
	if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, cpuid) < 0 ||
	    ioctl(vcpu, KVM_SET_CPUID2, cpuid) < 0)
		return fail("CPUID");
	free(cpuid);
	int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size <= 0)
		return fail("KVM_GET_VCPU_MMAP_SIZE");
	struct kvm_run *run =
	    mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		return fail("mmap of kvm_run");
	if (cpu_setup_vcpu(vcpu, &bi, &m, 0, 1, false, &e) < 0) {
		fprintf(stderr, "rawkvm: %s\n", e.msg);
		return RAW_FAIL;
	}

	/* The loop itself: what every VMM has to do at the least. */
	for (;;) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return fail("KVM_RUN");
		}
		switch (run->exit_reason) {
		case KVM_EXIT_IO: {
			uint8_t *d = (uint8_t *)run + run->io.data_offset;
			unsigned port = run->io.port;
			if (record_file != NULL && port == BENCH_PORT)
				record(run);
			if (run->io.direction == KVM_EXIT_IO_OUT) {
				if (port == 0x3f8)
					fwrite(d, 1, (size_t)run->io.size * run->io.count, stdout);
				else if (port == 0xf4) {
					fflush(stdout);
					if (record_file != NULL && fclose(record_file) != 0)
						return fail("--record");
					return ((d[0] << 1) | 1) & 0xff;
				}
			} else {
				memset(d, 0, (size_t)run->io.size * run->io.count);
				if (port == 0x3fd)
					d[0] = 0x60;
			}
			break;
		}
		case KVM_EXIT_MMIO:
			if (record_file != NULL && run->mmio.phys_addr == BENCH_MMIO)
				record(run);
			if (!run->mmio.is_write)
				memset(run->mmio.data, 0, sizeof(run->mmio.data));
			break;
		case KVM_EXIT_HLT:
			fflush(stdout);
			return 0;
		case KVM_EXIT_INTR:
			break;
		default:
			fflush(stdout);
			fprintf(stderr, "rawkvm: unexpected exit reason %u\n", run->exit_reason);
			return RAW_FAIL;
		}
	}
}
