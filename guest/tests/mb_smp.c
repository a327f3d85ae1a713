/*
 * mb_smp: a 32-bit multiboot v1 kernel that checks what `qemu -kernel`
 * gives a kernel, and prints only what must be the same under QEMU and
 * vmmux:
 *
 *   - the command line ("KERNEL APPEND") and mem_lower (mem_upper only has to
 *     lie within the RAM fw_cfg reports: the firmware under QEMU keeps some);
 *   - the modules: count, each one's string, size and contents (up to 64
 *     bytes, non-printable bytes as \xNN), with the layout checked (each
 *     module page-aligned, above the kernel, inside RAM, not overlapping the
 *     kernel, another module, the information structure or the command line;
 *     nothing in page 0);
 *   - QEMU's firmware configuration (fw_cfg) at ports 0x510 (selector, 16
 *     bits) / 0x511 (data, byte-wise): the signature "QEMU", the CPU count,
 *     the maximum CPU count, the RAM size, and the RAM entry at address 0 of
 *     the file "etc/e820", found through the file directory;
 *   - SMP: every other CPU (the count from fw_cfg) is started with
 *     INIT-SIPI-SIPI through the local APIC at 0xfee00000. Each AP enters a
 *     real-mode trampoline copied to 0x7000 (SIPI vector 7), switches to
 *     32-bit protected mode with the trampoline's own GDT, reports its APIC
 *     ID (CPUID leaf 1) and halts. The BSP waits a bounded time for each.
 *
 * Exit codes (port 0xf4): 0x31 all checks passed (status 99); 0x32 bad
 * multiboot magic; 0x33 a layout or module check failed; 0x34 fw_cfg
 * missing or wrong; 0x35 an AP did not come up in time (or reported a wrong
 * APIC ID).
 */
#include "multiboot.h"
#include "rt.h"

#define EXIT_OK	    0x31u
#define EXIT_MAGIC  0x32u
#define EXIT_LAYOUT 0x33u
#define EXIT_FWCFG  0x34u
#define EXIT_AP	    0x35u

#define MBI_FLAG_MODS (1u << 3)
#define PAGE	      0x1000u

/* The module entries that mods_addr points at (multiboot v1, 3.3). */
struct mb_module {
	uint32_t mod_start, mod_end, string, reserved;
};

/* fw_cfg: QEMU's legacy I/O interface. */
#define FW_CFG_PORT_SEL	 0x510u
#define FW_CFG_PORT_DATA 0x511u
#define FW_CFG_SIGNATURE 0x0000u
#define FW_CFG_RAM_SIZE	 0x0003u
#define FW_CFG_NB_CPUS	 0x0005u
#define FW_CFG_MAX_CPUS	 0x000fu
#define FW_CFG_FILE_DIR	 0x0019u

/* The local APIC (xAPIC MMIO; paging is off, so physical = linear). */
#define LAPIC_BASE     0xfee00000u
#define LAPIC_SVR      0x0f0u
#define LAPIC_ICR_LO   0x300u
#define LAPIC_ICR_HI   0x310u
#define ICR_PENDING    (1u << 12)
#define ICR_INIT       0x00004500u /* INIT, level assert, physical destination */
#define ICR_STARTUP    0x00004600u /* start-up IPI; | vector */
#define TRAMPOLINE     0x7000u
#define AP_STACK_BYTES 4096u
#define MAX_APS	       7u

extern const char __image_start[], _end[];
extern const char mb_smp_tramp_start[], mb_smp_tramp_end[];

/* Set by the BSP before each SIPI: the stack the AP takes. */
volatile uint32_t ap_next_stack;
/* Set by the AP: its APIC ID + 1. */
static volatile uint32_t ap_reported;
static uint8_t ap_stacks[MAX_APS][AP_STACK_BYTES] __attribute__((aligned(16)));

/*
 * The AP trampoline, copied to TRAMPOLINE: real mode (CS = 0x0700, IP = 0
 * after a SIPI with vector 7) -> its own flat GDT -> 32-bit protected mode
 * -> ap_entry32 in the kernel. Addresses inside it are offsets from its
 * start (DS = CS), the GDT's base the absolute copy address.
 */
__asm__(".pushsection .text\n"
	".code16\n"
	".globl mb_smp_tramp_start\n"
	"mb_smp_tramp_start:\n"
	"	cli\n"
	"	movw %cs, %ax\n"
	"	movw %ax, %ds\n"
	"	lgdtl (tramp_gdtr - mb_smp_tramp_start)\n"
	"	movl %cr0, %eax\n"
	"	orl $1, %eax\n"
	"	movl %eax, %cr0\n"
	"	ljmpl $0x08, $ap_entry32\n"
	"	.balign 8\n"
	"tramp_gdt:\n"
	"	.quad 0\n"
	"	.quad 0x00cf9a000000ffff\n" /* 0x08: flat 32-bit code */
	"	.quad 0x00cf92000000ffff\n" /* 0x10: flat data */
	"tramp_gdtr:\n"
	"	.word 23\n"
	"	.long 0x7000 + (tramp_gdt - mb_smp_tramp_start)\n"
	".globl mb_smp_tramp_end\n"
	"mb_smp_tramp_end:\n"
	".code32\n"
	"ap_entry32:\n"
	"	movw $0x10, %ax\n"
	"	movw %ax, %ds\n"
	"	movw %ax, %es\n"
	"	movw %ax, %ss\n"
	"	movw %ax, %fs\n"
	"	movw %ax, %gs\n"
	"	movl ap_next_stack, %esp\n"
	"	call ap_main\n"
	"1:	cli\n"
	"	hlt\n"
	"	jmp 1b\n"
	".popsection\n");

static unsigned apic_id(void)
{
	uint32_t a = 1, b, c = 0, d;
	__asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
	return b >> 24;
}

void ap_main(void);
void ap_main(void)
{
	ap_reported = apic_id() + 1;
}

static uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

static void lapic_write(uint32_t reg, uint32_t v)
{
	mmio_write32(LAPIC_BASE + reg, v);
}

static uint32_t lapic_read(uint32_t reg)
{
	return mmio_read32(LAPIC_BASE + reg);
}

static void lapic_ipi(unsigned dest, uint32_t icr)
{
	lapic_write(LAPIC_ICR_HI, (uint32_t)dest << 24);
	lapic_write(LAPIC_ICR_LO, icr);
	for (unsigned i = 0; i < 100000 && (lapic_read(LAPIC_ICR_LO) & ICR_PENDING); i++)
		cpu_relax();
}

/* Spin for about N TSC ticks. */
static void delay(uint64_t n)
{
	uint64_t t0 = rdtsc();
	while (rdtsc() - t0 < n)
		cpu_relax();
}

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

static uint64_t fw_cfg_le(uint16_t key, unsigned bytes)
{
	uint8_t b[8] = {0};
	fw_cfg_select(key);
	fw_cfg_read(b, bytes);
	uint64_t v = 0;
	for (unsigned i = bytes; i > 0; i--)
		v = v << 8 | b[i - 1];
	return v;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The selector of the fw_cfg file NAME from the file directory, with its
 * size in *size; 0 when it is not listed. */
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

static void print_bytes(const uint8_t *p, uint32_t n)
{
	for (uint32_t i = 0; i < n && i < 64; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
			putc((char)p[i]);
		else
			printf("\\x%02x", p[i]);
	}
	if (n > 64)
		puts("...");
}

/* [a, a+an) and [b, b+bn) overlap. */
static bool overlap(uint32_t a, uint32_t an, uint32_t b, uint32_t bn)
{
	return a < b + bn && b < a + an;
}

static unsigned check_modules(const struct multiboot_info *mbi, uint64_t ram)
{
	const uint32_t k_lo = (uint32_t)(uintptr_t)__image_start;
	const uint32_t k_hi = (uint32_t)(uintptr_t)_end;
	const char *cmd = (const char *)(uintptr_t)mbi->cmdline;
	unsigned bad = 0;

	if ((uintptr_t)mbi < PAGE || mbi->cmdline < PAGE) {
		puts("layout: information structure or command line in page 0\n");
		bad++;
	}
	if (!(mbi->flags & MBI_FLAG_MODS)) {
		puts("modules: none (flag clear)\n");
		return bad;
	}
	const struct mb_module *mods = (const struct mb_module *)(uintptr_t)mbi->mods_addr;
	printf("modules: %u\n", mbi->mods_count);
	for (uint32_t i = 0; i < mbi->mods_count && i < 16; i++) {
		const struct mb_module *m = &mods[i];
		uint32_t len = m->mod_end - m->mod_start;
		printf("module %u: '%s' %u bytes: ", i, (const char *)(uintptr_t)m->string, len);
		print_bytes((const uint8_t *)(uintptr_t)m->mod_start, len);
		puts("\n");
		bool ok = m->mod_end >= m->mod_start && (m->mod_start & (PAGE - 1)) == 0 &&
			  m->mod_start >= PAGE && m->mod_start >= k_hi && m->mod_end <= ram &&
			  m->string >= PAGE &&
			  !overlap(m->mod_start, len, (uint32_t)(uintptr_t)mbi, sizeof(*mbi)) &&
			  !overlap(m->mod_start, len, mbi->cmdline, strlen(cmd) + 1) &&
			  !overlap(m->mod_start, len, k_lo, k_hi - k_lo);
		for (uint32_t j = 0; j < i; j++)
			ok = ok && !overlap(m->mod_start, len, mods[j].mod_start,
					    mods[j].mod_end - mods[j].mod_start);
		if (!ok) {
			printf("module %u: bad layout [%x, %x)\n", i, m->mod_start, m->mod_end);
			bad++;
		}
	}
	return bad;
}

/* Start AP APIC ID ID; true when it reported itself. */
static bool start_ap(unsigned id, unsigned slot)
{
	ap_reported = 0;
	ap_next_stack = (uint32_t)(uintptr_t)&ap_stacks[slot][AP_STACK_BYTES];
	lapic_ipi(id, ICR_INIT);
	delay(1000000);
	for (int sipi = 0; sipi < 2 && ap_reported == 0; sipi++) {
		lapic_ipi(id, ICR_STARTUP | (TRAMPOLINE >> 12));
		/* Bounded: 2 * 10^9 TSC ticks, about a second; an AP needs
		 * microseconds (tens of them where CPL0 code is emulated). */
		uint64_t t0 = rdtsc();
		while (ap_reported == 0 && rdtsc() - t0 < 2000000000ull)
			cpu_relax();
	}
	return ap_reported == id + 1;
}

int main(uint32_t magic, const struct multiboot_info *mbi)
{
	if (magic != MULTIBOOT_BOOTLOADER_MAGIC) {
		printf("bad multiboot magic %x\n", magic);
		return EXIT_MAGIC;
	}
	puts("multiboot ok\n");
	printf("cmdline: %s\n",
	       (mbi->flags & MBI_FLAG_CMDLINE) ? (const char *)(uintptr_t)mbi->cmdline : "(none)");
	printf("mem_lower %u KiB\n", mbi->mem_lower);

	char sig[5] = {0};
	fw_cfg_select(FW_CFG_SIGNATURE);
	fw_cfg_read(sig, 4);
	if (memcmp(sig, "QEMU", 4) != 0) {
		puts("fw_cfg: no signature\n");
		return EXIT_FWCFG;
	}
	unsigned cpus = (unsigned)fw_cfg_le(FW_CFG_NB_CPUS, 2);
	unsigned max_cpus = (unsigned)fw_cfg_le(FW_CFG_MAX_CPUS, 2);
	uint64_t ram = fw_cfg_le(FW_CFG_RAM_SIZE, 8);
	printf("fw_cfg: signature %s, cpus %u, max cpus %u, ram %u MiB\n", sig, cpus, max_cpus,
	       (unsigned)(ram >> 20));
	uint32_t fsize = 0;
	uint16_t fsel = fw_cfg_find("etc/e820", &fsize);
	if (fsel == 0 || fsize < 20 || fsize % 20 != 0) {
		printf("fw_cfg: etc/e820 missing or malformed (selector %x, %u bytes)\n", fsel,
		       fsize);
		return EXIT_FWCFG;
	}
	/* Entries of u64 address, u64 length, u32 type: the RAM from 0 (type 1). */
	fw_cfg_select(fsel);
	bool found = false;
	for (uint32_t off = 0; off + 20 <= fsize && off < 20 * 128; off += 20) {
		uint8_t e820[20];
		fw_cfg_read(e820, sizeof(e820));
		uint64_t e_addr = 0, e_len = 0;
		for (unsigned i = 8; i > 0; i--) {
			e_addr = e_addr << 8 | e820[i - 1];
			e_len = e_len << 8 | e820[8 + i - 1];
		}
		if (e_addr != 0 || e820[16] != 1 || found)
			continue;
		printf("fw_cfg: etc/e820 RAM from 0: %u MiB\n", (unsigned)(e_len >> 20));
		found = true;
	}
	if (!found) {
		puts("fw_cfg: etc/e820 has no RAM entry at 0\n");
		return EXIT_FWCFG;
	}
	if (cpus == 0 || cpus > max_cpus || cpus > MAX_APS + 1 || ram < (1u << 20)) {
		puts("fw_cfg: implausible values\n");
		return EXIT_FWCFG;
	}
	if (!(mbi->flags & MBI_FLAG_MEM) || ((uint64_t)mbi->mem_upper << 10) + (1u << 20) > ram) {
		printf("mem_upper %u KiB is beyond the RAM\n", mbi->mem_upper);
		return EXIT_LAYOUT;
	}

	if (check_modules(mbi, ram) != 0)
		return EXIT_LAYOUT;

	printf("bsp: apic id %u\n", apic_id());
	memcpy((void *)TRAMPOLINE, mb_smp_tramp_start,
	       (size_t)(mb_smp_tramp_end - mb_smp_tramp_start));
	lapic_write(LAPIC_SVR, 0x1ff); /* software-enable, spurious vector 0xff */
	for (unsigned id = 1; id < cpus; id++) {
		if (!start_ap(id, id - 1)) {
			printf("ap %u: did not come up (reported %u)\n", id, ap_reported);
			return EXIT_AP;
		}
		printf("ap %u: up, apic id %u\n", id, ap_reported - 1);
	}
	printf("smp ok: %u cpus\n", cpus);
	return EXIT_OK;
}
