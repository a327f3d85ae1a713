/*
 * test_multiboot.c: multiboot v1 kernels (ELF32 and the a.out kludge) and
 * the information structure, on images assembled in memory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "imgbuild.h"
#include "../../../vmms/fwcfg/pc_memmap.h"

#define RAM  (4 * MIB)
#define NAME "kernel.mb"

#define MBI_FLAGS_WANT 0x24fu /* MEM, BOOT_DEVICE, CMDLINE, MODS, MMAP, BOOT_LOADER_NAME */

/* ELF32: text at 1 MiB, data + bss at 0x103000 (ends 0x104000). */
static const struct tseg good_segs[] = {
    {.type = PT_LOAD, .flags = PF_R | PF_X, .vaddr = 0x100000, .filesz = 0x2000, .memsz = 0x2000},
    {.type = PT_LOAD, .flags = PF_R | PF_W, .vaddr = 0x103000, .filesz = 0x80, .memsz = 0x1000},
};
#define GOOD_ENTRY 0x100020u

/* a.out kludge: 0x3000-byte file loaded at 1 MiB, header at file offset
 * 0x40, 0x2800 bytes loaded, bss to 0x105000. */
static const struct aout good_aout = {
    .file_len = 0x3000,
    .hdr_off = 0x40,
    .header_addr = 0x100040,
    .load_addr = 0x100000,
    .load_end = 0x102800,
    .bss_end = 0x105000,
    .entry = 0x100100,
};

struct fx {
	struct tmem t;
	struct tseg segs[4];
	unsigned n;
	struct aout a;
	uint8_t *img;
	size_t len;
	struct load_opts o;
	struct boot_image out;
	struct errbuf e;
};

static int setup_ram(void **state, uint64_t ram)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	tmem_init(&f->t, ram, 0xcc);
	memcpy(f->segs, good_segs, sizeof(good_segs));
	f->n = 2;
	f->a = good_aout;
	f->o.cmdline = "kernel.mb console=ttyS0 loglevel=7";
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_ram(state, RAM);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	assert_true(tmem_guards_ok(&f->t));
	tmem_free(&f->t);
	free(f->img);
	free(f);
	return 0;
}

static void build_elf(struct fx *f, uint32_t entry, uint32_t mbflags)
{
	free(f->img);
	f->img = build_elf32_mb(f->segs, f->n, entry, mbflags, &f->len);
}

static void build_a(struct fx *f)
{
	free(f->img);
	f->img = build_aout(&f->a, &f->len);
}

static int load(struct fx *f)
{
	memset(&f->e, 0, sizeof(f->e));
	return loader_load(NAME, f->img, f->len, &f->o, &f->t.m, &f->out, &f->e);
}

static Elf32_Ehdr *eh32(struct fx *f)
{
	return (Elf32_Ehdr *)f->img;
}

static Elf32_Phdr *ph32(struct fx *f, unsigned i)
{
	return (Elf32_Phdr *)(f->img + sizeof(Elf32_Ehdr) + i * sizeof(Elf32_Phdr));
}

static const uint8_t *at(struct fx *f, uint64_t gpa)
{
	assert_true(gpa < f->t.m.size);
	return f->t.m.host + gpa;
}

/* The whole information: the structure and memory map at QEMU's 0x9500 and
 * 0x9000 (or, when the kernel lies there, opening the region), the module
 * entries, loader name and command line in the region at WANT_BASE. */
static void check_mbi(struct fx *f, uint32_t want_base, const char *cmdline)
{
	uint64_t ram = f->t.m.size;
	bool low = !(f->out.image_lo < 0x9500 + 116 && 0x9000 < f->out.image_hi);
	uint32_t base = want_base;
	assert_int_equal(f->out.mb_info, low ? 0x9500 : want_base);
	assert_true(base >= 0x1000);
	assert_int_equal(base % 0x1000, 0);
	assert_true(base >= f->out.image_hi);
	const uint8_t *mbi = at(f, f->out.mb_info);
	assert_int_equal(rd32(mbi + 0), MBI_FLAGS_WANT);
	assert_int_equal(rd32(mbi + 4), 639); /* KiB below the EBDA at 0x9fc00 */
	/* KiB from 1 MiB to SeaBIOS's reserved top 128 KiB, as under QEMU */
	assert_int_equal(rd32(mbi + 8), (ram - MIB - 0x20000) / 1024);
	assert_int_equal(rd32(mbi + 12), 0x8000ffffu);
	assert_int_equal(rd32(mbi + 20), 0); /* mods_count */

	/* every pointer lands in the region (the memory map at 0x9000 or in it) */
	uint32_t cmd = rd32(mbi + 16), mmap_len = rd32(mbi + 44), mmap = rd32(mbi + 48);
	uint32_t lname = rd32(mbi + 64);
	uint32_t first = low ? base : base + 88;
	uint32_t region_end = base + 0x1000 + (uint32_t)strlen(cmdline);
	assert_true(cmd >= first && cmd < region_end);
	if (low)
		assert_int_equal(mmap, 0x9000);
	else
		assert_true(mmap >= first && mmap + mmap_len <= region_end);
	assert_true(lname >= first && lname < region_end);
	assert_string_equal((const char *)at(f, cmd), cmdline);
	assert_string_equal((const char *)at(f, lname), "vmmux");

	struct {
		uint64_t base, len;
		uint32_t type;
	} want[] = {
	    {0, 0x9fc00, 1},
	    {0x9fc00, 0x400, 2},
	    {0xf0000, 0x10000, 2},
	    {0x100000, ram - 0x100000 - 0x20000, 1},
	    {ram - 0x20000, 0x20000, 2},
	    {0xfeffc000, 0x4000, 2},
	    {0xfffc0000, 0x40000, 2},
	    {0xfd00000000, 0x300000000, 2}, /* AMD hosts only: checked below */
	};
	/* QEMU's pc machine as SeaBIOS reports it (vmms/fwcfg/pc_memmap.h) */
	unsigned n = pc_amd_ht_hole() ? 8 : 7;
	assert_int_equal(mmap_len, n * 24);
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *p = at(f, mmap + i * 24);
		assert_int_equal(rd32(p), 20);
		assert_int_equal(rd64(p + 4), want[i].base);
		assert_int_equal(rd64(p + 12), want[i].len);
		assert_int_equal(rd32(p + 20), want[i].type);
	}
}

static void test_elf32_good(void **state)
{
	struct fx *f = *state;
	build_elf(f, GOOD_ENTRY, 0x3); /* page-align modules, memory info */
	expect_ok(load(f), &f->e);
	assert_int_equal(f->out.kind, BOOT_MULTIBOOT);
	assert_int_equal(f->out.mode, CPU_MODE_PROT32);
	assert_int_equal(f->out.entry, GOOD_ENTRY);
	assert_int_equal(f->out.image_lo, 0x100000);
	assert_int_equal(f->out.image_hi, 0x104000);
	for (uint64_t j = 0; j < 0x2000; j++)
		assert_int_equal(*at(f, 0x100000 + j), seg_byte(0, j));
	assert_int_equal(*at(f, 0x102000), 0xcc); /* the gap between segments */
	for (uint64_t j = 0; j < 0x80; j++)
		assert_int_equal(*at(f, 0x103000 + j), seg_byte(1, j));
	for (uint64_t j = 0x80; j < 0x1000; j++)
		assert_int_equal(*at(f, 0x103000 + j), 0);
	check_mbi(f, 0x104000, f->o.cmdline);
	assert_int_equal(*at(f, 0), 0xcc); /* page 0 untouched */
}

static void test_elf32_protected_mode_and_null_cmdline(void **state)
{
	struct fx *f = *state;
	build_elf(f, GOOD_ENTRY, 0);
	f->o.mode = CPU_MODE_PROT32;
	f->o.cmdline = NULL;
	expect_ok(load(f), &f->e);
	check_mbi(f, 0x104000, "");
}

static void test_video_flag_ignored(void **state)
{
	struct fx *f = *state;
	build_elf(f, GOOD_ENTRY, 0x4 | 0x2 | 0x1);
	expect_ok(load(f), &f->e);
	assert_int_equal(f->out.entry, GOOD_ENTRY);
}

static void test_unsupported_flags(void **state)
{
	struct fx *f = *state;
	build_elf(f, GOOD_ENTRY, 0x8 | 0x2);
	expect_error(load(f), &f->e, NAME, "requires unsupported feature bits 0x8");
	build_elf(f, GOOD_ENTRY, 0x8000);
	expect_error(load(f), &f->e, NAME, "requires unsupported feature bits 0x8000");
	f->a.extra_flags = 0x100;
	build_a(f);
	expect_error(load(f), &f->e, NAME, "requires unsupported feature bits 0x100");
}

static void test_mode_refused(void **state)
{
	struct fx *f = *state;
	build_elf(f, GOOD_ENTRY, 0);
	f->o.mode = CPU_MODE_LONG;
	expect_error(load(f), &f->e, NAME,
		     "multiboot kernels start in 32-bit protected mode; --cpu-mode long does not "
		     "apply");
	f->o.mode = CPU_MODE_REAL;
	expect_error(load(f), &f->e, NAME, "--cpu-mode real does not apply");
}

static void test_entry_virtual_translated(void **state)
{
	struct fx *f = *state;
	/* a higher-half kernel linked at 0xC0100000, loaded at 1 MiB */
	f->segs[0].vaddr = 0xc0100000u;
	f->segs[0].paddr = 0x100000;
	f->segs[1].vaddr = 0xc0103000u;
	f->segs[1].paddr = 0x103000;
	build_elf(f, 0xc0100020u, 0);
	expect_ok(load(f), &f->e);
	assert_int_equal(f->out.entry, 0x100020);
	assert_int_equal(f->out.image_lo, 0x100000);
	assert_int_equal(*at(f, 0x100000), seg_byte(0, 0));
}

static void test_elf32_entry_outside(void **state)
{
	struct fx *f = *state;
	build_elf(f, 0x102800, 0);
	expect_error(load(f), &f->e, NAME,
		     "ELF entry point 0x102800 is outside every loaded segment");
}

static void test_elf64_without_addr_fields(void **state)
{
	struct fx *f = *state;
	struct tseg s = {.type = PT_LOAD,
			 .flags = PF_R | PF_X,
			 .vaddr = 0x100000,
			 .filesz = 0x100,
			 .memsz = 0x100};
	free(f->img);
	f->img = build_elf64(&s, 1, 0x100000, &f->len);
	mb_put_header(f->img, 0x800, 0x2);
	expect_error(load(f), &f->e, NAME,
		     "multiboot image is ELF64; only ELF32 or the address fields (flag bit 16) "
		     "are supported");
}

static void test_no_elf_without_addr_fields(void **state)
{
	struct fx *f = *state;
	build_a(f);
	mb_put_header(f->img, 0x40, 0); /* flag bit 16 cleared */
	expect_error(load(f), &f->e, NAME, "must be ELF32, but it is not an ELF file");
}

static void test_elf32_header_errors(void **state)
{
	struct fx *f = *state;
	build_elf(f, GOOD_ENTRY, 0);
	eh32(f)->e_machine = EM_X86_64;
	expect_error(load(f), &f->e, NAME, "ELF machine 62 is not EM_386");
	build_elf(f, GOOD_ENTRY, 0);
	eh32(f)->e_type = ET_DYN;
	expect_error(load(f), &f->e, NAME, "ELF type 3 is not ET_EXEC");
	build_elf(f, GOOD_ENTRY, 0);
	eh32(f)->e_phentsize = 56;
	expect_error(load(f), &f->e, NAME, "e_phentsize 56 is not 32");
	build_elf(f, GOOD_ENTRY, 0);
	eh32(f)->e_phoff = (uint32_t)f->len;
	expect_error(load(f), &f->e, NAME, "program header table (offset");
	build_elf(f, GOOD_ENTRY, 0);
	eh32(f)->e_phoff = 0xfffffff0u;
	expect_error(load(f), &f->e, NAME, "program header table (offset 0xfffffff0");
	/* an ELF32 header cut short, with a multiboot header inside its first
	 * 40 bytes (over e_ident's padding and e_type..e_version) */
	uint8_t t[40] = {0x7f, 'E', 'L', 'F', ELFCLASS32, ELFDATA2LSB, EV_CURRENT};
	mb_put_header(t, 12, 0);
	memset(&f->e, 0, sizeof(f->e));
	expect_error(loader_load(NAME, t, sizeof(t), &f->o, &f->t.m, &f->out, &f->e), &f->e, NAME,
		     "truncated ELF header (40 bytes, need 52)");
}

static void test_elf32_segment_errors(void **state)
{
	struct fx *f = *state;
	build_elf(f, GOOD_ENTRY, 0);
	ph32(f, 1)->p_filesz = 0x2000;
	expect_error(load(f), &f->e, NAME,
		     "program header 1: p_filesz 0x2000 is larger than p_memsz 0x1000");
	build_elf(f, GOOD_ENTRY, 0);
	ph32(f, 1)->p_offset = (uint32_t)f->len - 0x10;
	expect_error(load(f), &f->e, NAME, "program header 1: file range");
	build_elf(f, GOOD_ENTRY, 0);
	ph32(f, 1)->p_paddr = RAM - 0x800;
	expect_error(load(f), &f->e, NAME,
		     "program header 1: segment [0x3ff800, 0x400800) extends beyond guest RAM");
	build_elf(f, GOOD_ENTRY, 0);
	ph32(f, 1)->p_paddr = 0xfffff000u;
	ph32(f, 1)->p_memsz = 0x2000;
	expect_error(load(f), &f->e, NAME,
		     "program header 1: segment [0xfffff000, +0x2000) extends beyond 4 GiB");
	build_elf(f, GOOD_ENTRY, 0);
	ph32(f, 1)->p_paddr = 0x800;
	expect_error(load(f), &f->e, NAME, "program header 1: segment at 0x800 touches page 0");
	build_elf(f, GOOD_ENTRY, 0);
	ph32(f, 1)->p_paddr = 0x101000;
	expect_error(
	    load(f), &f->e, NAME,
	    "program header 0 [0x100000, 0x102000) overlaps program header 1 [0x101000, 0x102000)");
}

static void test_aout_good(void **state)
{
	struct fx *f = *state;
	build_a(f);
	expect_ok(load(f), &f->e);
	assert_int_equal(f->out.kind, BOOT_MULTIBOOT);
	assert_int_equal(f->out.entry, 0x100100);
	assert_int_equal(f->out.image_lo, 0x100000);
	assert_int_equal(f->out.image_hi, 0x105000);
	for (uint64_t j = 0; j < 0x2800; j++)
		if (*at(f, 0x100000 + j) != f->img[j])
			fail_msg("byte 0x%llx differs", (unsigned long long)j);
	for (uint64_t a = 0x102800; a < 0x105000; a++)
		assert_int_equal(*at(f, a), 0);
	check_mbi(f, 0x105000, f->o.cmdline);
	assert_int_equal(*at(f, 0xfffff), 0xcc);
}

static void test_aout_file_offset(void **state)
{
	struct fx *f = *state;
	/* the kernel starts at file offset 0x1000 (header at 0x1040) */
	f->a.hdr_off = 0x1040;
	f->a.file_len = 0x4000;
	f->a.load_end = 0; /* to the end of the file: 0x3000 bytes */
	f->a.bss_end = 0;  /* no bss */
	build_a(f);
	expect_ok(load(f), &f->e);
	assert_int_equal(f->out.image_hi, 0x103000);
	for (uint64_t j = 0; j < 0x3000; j++)
		if (*at(f, 0x100000 + j) != f->img[0x1000 + j])
			fail_msg("byte 0x%llx differs", (unsigned long long)j);
	check_mbi(f, 0x103000, f->o.cmdline);
}

static void test_aout_errors(void **state)
{
	struct fx *f = *state;
	f->a.load_addr = 0x100080; /* above header_addr 0x100040 */
	build_a(f);
	expect_error(load(f), &f->e, NAME, "load_addr 0x100080 is above header_addr 0x100040");

	f->a = good_aout;
	f->a.load_addr = 0x0ff000; /* file offset 0x40 - 0x1040 < 0 */
	build_a(f);
	expect_error(load(f), &f->e, NAME, "puts the load start before the file's beginning");

	f->a = good_aout;
	f->a.load_end = 0x0ff000;
	build_a(f);
	expect_error(load(f), &f->e, NAME, "load_end_addr 0xff000 is below load_addr 0x100000");

	f->a = good_aout;
	f->a.load_end = 0x104000; /* 0x4000 bytes from a 0x3000-byte file */
	build_a(f);
	expect_error(load(f), &f->e, NAME, "beyond the end of the file (12288 bytes)");

	f->a = good_aout;
	f->a.bss_end = 0x102000; /* below load_end */
	build_a(f);
	expect_error(load(f), &f->e, NAME,
		     "bss_end_addr 0x102000 is below the end of the load range 0x102800");

	f->a = good_aout;
	f->a.bss_end = RAM + 0x1000;
	build_a(f);
	expect_error(load(f), &f->e, NAME,
		     "multiboot bss [0x102800, 0x401000) extends beyond guest RAM");

	f->a = good_aout;
	f->a.entry = 0x102800; /* loaded range ends there; bss is not loaded code */
	build_a(f);
	expect_error(load(f), &f->e, NAME,
		     "entry_addr 0x102800 is outside the loaded range [0x100000, 0x102800)");
	f->a.entry = 0xfffff;
	build_a(f);
	expect_error(load(f), &f->e, NAME, "entry_addr 0xfffff is outside");

	f->a = good_aout;
	f->a.load_addr = RAM - 0x1000;
	f->a.header_addr = RAM - 0x1000 + 0x40;
	f->a.load_end = 0;
	f->a.bss_end = 0;
	f->a.entry = RAM - 0x1000;
	build_a(f);
	expect_error(load(f), &f->e, NAME,
		     "multiboot load range [0x3ff000, 0x402000) extends beyond guest RAM");

	f->a = good_aout;
	f->a.load_addr = 0x100;
	f->a.header_addr = 0x140;
	f->a.load_end = 0x1000;
	f->a.bss_end = 0;
	f->a.entry = 0x200;
	build_a(f);
	expect_error(load(f), &f->e, NAME, "multiboot load range at 0x100 touches page 0");

	f->a = good_aout;
	f->a.load_end = 0x100040; /* 0x40 bytes loaded: the entry is past them */
	build_a(f);
	expect_error(load(f), &f->e, NAME, "entry_addr 0x100100 is outside");
	f->a.load_end = f->a.load_addr;
	build_a(f);
	expect_error(load(f), &f->e, NAME, "multiboot header at offset 0x40: load range is empty");
}

static void test_aout_truncated_fields(void **state)
{
	struct fx *f = *state;
	build_a(f);
	/* a header whose address fields would run past the end of the file */
	uint8_t small[32];
	memset(small, 0, sizeof(small));
	mb_put_header(small, 16, 0x10000);
	memset(&f->e, 0, sizeof(f->e));
	expect_error(loader_load(NAME, small, sizeof(small), &f->o, &f->t.m, &f->out, &f->e), &f->e,
		     NAME, "multiboot header at offset 0x10 is truncated");
}

static void test_header_search(void **state)
{
	struct fx *f = *state;
	/* a bad checksum first, a valid header later: the valid one is used */
	build_a(f);
	uint8_t *b = calloc(1, f->len + 0x100);
	assert_non_null(b);
	memcpy(b + 0x100, f->img, f->len);
	wr32(b + 0x10, 0x1BADB002u);
	wr32(b + 0x14, 0x10000u);
	wr32(b + 0x18, 0x1234u);
	assert_int_equal(multiboot_find_header(b, f->len + 0x100), 0x140);
	assert_int_equal(multiboot_find_bad_magic(b, f->len + 0x100), 0x10);
	free(b);
	/* not 4-byte aligned: not found */
	uint8_t u[64] = {0};
	mb_put_header(u, 6, 0);
	assert_int_equal(multiboot_find_header(u, sizeof(u)), -1);
	/* beyond 8192 bytes: not found */
	uint8_t *big = calloc(1, 9000);
	assert_non_null(big);
	mb_put_header(big, 8184, 0);
	assert_int_equal(multiboot_find_header(big, 9000), -1);
	mb_put_header(big, 8180, 0); /* the last place that fits */
	assert_int_equal(multiboot_find_header(big, 9000), 8180);
	free(big);
	/* a header cut by the end of the file */
	uint8_t c[12];
	mb_put_header(c, 0, 0);
	assert_int_equal(multiboot_find_header(c, 11), -1);
	assert_int_equal(multiboot_find_header(c, 12), 0);
}

static void test_bad_checksum(void **state)
{
	struct fx *f = *state;
	build_a(f);
	wr32(f->img + 0x48, rd32(f->img + 0x48) + 1);
	expect_error(load(f), &f->e, NAME, "not a multiboot or ELF64 image");
	assert_non_null(strstr(f->e.msg, "offset 0x40 has a bad checksum"));
	expect_error(loader_multiboot(NAME, f->img, f->len, 0x40, &f->o, &f->t.m, &f->out, &f->e),
		     &f->e, NAME, "multiboot header at offset 0x40 has a bad checksum");
	/* an ELF32 kernel with a bad checksum */
	build_elf(f, GOOD_ENTRY, 0);
	wr32(f->img + MB_ELF_HDR_OFF + 8, 0);
	expect_error(load(f), &f->e, NAME,
		     "not a multiboot or ELF64 image: an ELF32 file without a multiboot v1 header");
	assert_non_null(strstr(f->e.msg, "offset 0x200 has a bad checksum"));
}

static void test_mbi_skips_low_hole(void **state)
{
	struct fx *f = *state;
	/* a kernel ending just below 640 KiB: the information goes to 1 MiB */
	f->a.load_addr = 0x90000;
	f->a.header_addr = 0x90040;
	f->a.load_end = 0x92000;
	f->a.bss_end = 0x9f800;
	f->a.entry = 0x90100;
	build_a(f);
	expect_ok(load(f), &f->e);
	check_mbi(f, 0x100000, f->o.cmdline);
	/* a kernel low in memory: right after it */
	f->a.bss_end = 0x93000;
	build_a(f);
	expect_ok(load(f), &f->e);
	check_mbi(f, 0x93000, f->o.cmdline);
}

static void test_mbi_where_the_kernel_lies(void **state)
{
	struct fx *f = *state;
	/* a kernel over QEMU's 0x9000-0x9574: the structure and the memory map
	 * open the region after it instead */
	f->a.load_addr = 0x8000;
	f->a.header_addr = 0x8040;
	f->a.load_end = 0xa000;
	f->a.bss_end = 0xa000;
	f->a.entry = 0x8100;
	build_a(f);
	expect_ok(load(f), &f->e);
	check_mbi(f, 0xa000, f->o.cmdline);
}

static int setup_small(void **state)
{
	return setup_ram(state, 2 * MIB);
}

static void test_ram_too_small_for_mbi(void **state)
{
	struct fx *f = *state;
	f->a.bss_end = 2 * MIB; /* the kernel fills RAM */
	build_a(f);
	expect_error(load(f), &f->e, NAME, "is too small for the multiboot information");
	/* one page left is enough */
	f->a.bss_end = 2 * MIB - 0x1000;
	build_a(f);
	expect_ok(load(f), &f->e);
	check_mbi(f, 2 * MIB - 0x1000, f->o.cmdline);
	/* but not with a command line longer than the page */
	char *longcmd = malloc(0x1000);
	assert_non_null(longcmd);
	memset(longcmd, 'x', 0xfff);
	longcmd[0xfff] = 0;
	f->o.cmdline = longcmd;
	expect_error(load(f), &f->e, NAME, "is too small for the multiboot information");
	free(longcmd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	    T(test_elf32_good),
	    T(test_elf32_protected_mode_and_null_cmdline),
	    T(test_video_flag_ignored),
	    T(test_unsupported_flags),
	    T(test_mode_refused),
	    T(test_entry_virtual_translated),
	    T(test_elf32_entry_outside),
	    T(test_elf64_without_addr_fields),
	    T(test_no_elf_without_addr_fields),
	    T(test_elf32_header_errors),
	    T(test_elf32_segment_errors),
	    T(test_aout_good),
	    T(test_aout_file_offset),
	    T(test_aout_errors),
	    T(test_aout_truncated_fields),
	    T(test_header_search),
	    T(test_bad_checksum),
	    T(test_mbi_skips_low_hole),
	    T(test_mbi_where_the_kernel_lies),
	    cmocka_unit_test_setup_teardown(test_ram_too_small_for_mbi, setup_small, teardown),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
