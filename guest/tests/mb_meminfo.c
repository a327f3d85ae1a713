/*
 * mb_meminfo: a 32-bit multiboot v1 kernel that prints everything it was
 * told about the machine's memory and CPUs, one fact a line, so that the
 * output under vmmux can be compared line by line with the output under
 * `qemu-system-x86_64 -accel kvm -kernel` for the same -m and -smp:
 *
 *   mbi flags F                      the information structure's flags
 *   mbi at A, mmap at M              where the structure and the memory map
 *                                    lie (QEMU: 0x9500, 0x9000, out of the
 *                                    way of a kernel's own allocations)
 *   mem_lower L KiB / mem_upper U KiB
 *   mmap I: base B len N type T      every entry of the multiboot memory map
 *   fw_cfg signature S               QEMU's fw_cfg at 0x510/0x511 (16-bit
 *   fw_cfg ram_size N                selector, byte-wise data): the items
 *   fw_cfg nb_cpus N                 kernels of hypervisor test suites read
 *   fw_cfg max_cpus N
 *   e820 I: base B len N type T      (kvm-unit-tests: RAM size, CPU counts)
 *                                    and every entry of the file etc/e820
 *                                    (found by the file directory)
 *   end                              then exit through port 0xf4 with 0x10
 *                                    (status 33)
 *
 * Nothing else whose value is the loader's own choice (where the command
 * line and modules lie, the loader's name) is printed, nor QEMU's kernel
 * loading items (0x07-0x18: the image QEMU's option ROM copies; vmmux loads
 * the kernel itself and has none of them; kvm-unit-tests reads 0x11 as a
 * RAM limit, where QEMU's kernel bytes and vmmux's 0 both mean none). Without fw_cfg (no
 * signature) the fw_cfg lines are "fw_cfg none".
 */
#include "multiboot.h"
#include "rt.h"

#define EXIT_DONE  0x10u
#define EXIT_MAGIC 0x11u

#define MBI_FLAG_MEM  (1u << 0)
#define MBI_FLAG_MMAP (1u << 6)

#define FW_CFG_PORT_SEL	 0x510u
#define FW_CFG_PORT_DATA 0x511u
#define FW_CFG_SIGNATURE 0x0000u
#define FW_CFG_RAM_SIZE	 0x0003u
#define FW_CFG_NB_CPUS	 0x0005u
#define FW_CFG_MAX_CPUS	 0x000fu
#define FW_CFG_FILE_DIR	 0x0019u

/* One multiboot memory map entry; SIZE does not count itself. */
struct mb_mmap {
	uint32_t size;
	uint32_t base_lo, base_hi;
	uint32_t len_lo, len_hi;
	uint32_t type;
} __attribute__((packed));

static void fw_cfg_select(uint16_t key)
{
	outw(FW_CFG_PORT_SEL, key);
}

static void fw_cfg_read(void *buf, uint32_t n)
{
	uint8_t *p = buf;
	for (uint32_t i = 0; i < n; i++)
		p[i] = inb(FW_CFG_PORT_DATA);
}

static uint64_t le(const uint8_t *b, unsigned bytes)
{
	uint64_t v = 0;
	for (unsigned i = bytes; i > 0; i--)
		v = v << 8 | b[i - 1];
	return v;
}

static uint64_t fw_cfg_le(uint16_t key, unsigned bytes)
{
	uint8_t b[8] = {0};
	fw_cfg_select(key);
	fw_cfg_read(b, bytes);
	return le(b, bytes);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The selector of the fw_cfg file NAME, its size in *size; 0 if absent. */
static uint16_t fw_cfg_find(const char *name, uint32_t *size)
{
	uint8_t hdr[4];
	fw_cfg_select(FW_CFG_FILE_DIR);
	fw_cfg_read(hdr, 4);
	uint32_t count = be32(hdr);
	for (uint32_t i = 0; i < count && i < 4096; i++) {
		uint8_t ent[64];
		fw_cfg_read(ent, sizeof(ent));
		ent[63] = 0;
		if (memcmp(ent + 8, name, strlen(name) + 1) == 0) {
			*size = be32(ent);
			return (uint16_t)(ent[4] << 8 | ent[5]);
		}
	}
	return 0;
}

static void print_fw_cfg(void)
{
	char sig[5] = {0};
	fw_cfg_select(FW_CFG_SIGNATURE);
	fw_cfg_read(sig, 4);
	if (memcmp(sig, "QEMU", 4) != 0) {
		puts("fw_cfg none\n");
		return;
	}
	printf("fw_cfg signature %s\n", sig);
	printf("fw_cfg ram_size 0x%llx\n", (unsigned long long)fw_cfg_le(FW_CFG_RAM_SIZE, 8));
	printf("fw_cfg nb_cpus %u\n", (unsigned)fw_cfg_le(FW_CFG_NB_CPUS, 2));
	printf("fw_cfg max_cpus %u\n", (unsigned)fw_cfg_le(FW_CFG_MAX_CPUS, 2));
	uint32_t size = 0;
	uint16_t sel = fw_cfg_find("etc/e820", &size);
	if (sel == 0 || size % 20 != 0) {
		printf("e820 missing or malformed (selector %x, %u bytes)\n", sel, size);
		return;
	}
	fw_cfg_select(sel);
	for (uint32_t i = 0; i < size / 20; i++) {
		uint8_t e[20];
		fw_cfg_read(e, sizeof(e));
		printf("e820 %u: base 0x%llx len 0x%llx type %u\n", i, (unsigned long long)le(e, 8),
		       (unsigned long long)le(e + 8, 8), (unsigned)le(e + 16, 4));
	}
}

int main(uint32_t magic, const struct multiboot_info *mbi)
{
	if (magic != 0x2BADB002u) {
		printf("bad multiboot magic 0x%x\n", magic);
		return EXIT_MAGIC;
	}
	printf("mbi flags 0x%x\n", mbi->flags);
	printf("mbi at %p, mmap at 0x%x\n", (const void *)mbi, mbi->mmap_addr);
	if (mbi->flags & MBI_FLAG_MEM)
		printf("mem_lower %u KiB\nmem_upper %u KiB\n", mbi->mem_lower, mbi->mem_upper);
	if (mbi->flags & MBI_FLAG_MMAP) {
		uint32_t p = mbi->mmap_addr, end = mbi->mmap_addr + mbi->mmap_length;
		for (unsigned i = 0; p < end && i < 64; i++) {
			const struct mb_mmap *m = (const struct mb_mmap *)(uintptr_t)p;
			printf("mmap %u: base 0x%llx len 0x%llx type %u\n", i,
			       (unsigned long long)m->base_hi << 32 | m->base_lo,
			       (unsigned long long)m->len_hi << 32 | m->len_lo, m->type);
			p += m->size + 4;
		}
	}
	print_fw_cfg();
	puts("end\n");
	return EXIT_DONE;
}
