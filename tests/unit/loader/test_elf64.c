/*
 * test_elf64.c: the ELF64 loader on images assembled in memory: a good image
 * checked byte for byte, and each malformed header or segment with its own
 * error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "imgbuild.h"

#define RAM  (4 * MIB)
#define NAME "guest.elf"

/* text at 1 MiB (RX), an empty PT_LOAD at 0, a PT_NOTE, data + bss at 2 MiB. */
static const struct tseg good_segs[] = {
    {.type = PT_LOAD, .flags = PF_R | PF_X, .vaddr = 0x100000, .filesz = 0x1800, .memsz = 0x1800},
    {.type = PT_LOAD, .flags = PF_R, .vaddr = 0, .filesz = 0, .memsz = 0},
    {.type = PT_NOTE, .flags = PF_R, .vaddr = 0x5000, .filesz = 0x10, .memsz = 0x10},
    {.type = PT_LOAD, .flags = PF_R | PF_W, .vaddr = 0x200000, .filesz = 0x100, .memsz = 0x3000},
};
#define NGOOD	   (sizeof(good_segs) / sizeof(good_segs[0]))
#define GOOD_ENTRY 0x100010u

struct fx {
	struct tmem t;
	struct tseg segs[8];
	unsigned n;
	uint8_t *img;
	size_t len;
	struct load_opts o;
	struct boot_image out;
	struct errbuf e;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	tmem_init(&f->t, RAM, 0xcc);
	memcpy(f->segs, good_segs, sizeof(good_segs));
	f->n = NGOOD;
	*state = f;
	return 0;
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

static void build(struct fx *f, uint64_t entry)
{
	free(f->img);
	f->img = build_elf64(f->segs, f->n, entry, &f->len);
}

static Elf64_Ehdr *eh(struct fx *f)
{
	return (Elf64_Ehdr *)f->img;
}

static Elf64_Phdr *ph(struct fx *f, unsigned i)
{
	return (Elf64_Phdr *)(f->img + sizeof(Elf64_Ehdr) + i * sizeof(Elf64_Phdr));
}

static int load(struct fx *f)
{
	memset(&f->e, 0, sizeof(f->e));
	return loader_elf64(NAME, f->img, f->len, &f->o, &f->t.m, &f->out, &f->e);
}

static int load_auto(struct fx *f)
{
	memset(&f->e, 0, sizeof(f->e));
	return loader_load(NAME, f->img, f->len, &f->o, &f->t.m, &f->out, &f->e);
}

static void test_good_image(void **state)
{
	struct fx *f = *state;
	build(f, GOOD_ENTRY);
	expect_ok(load_auto(f), &f->e);
	assert_int_equal(f->out.kind, BOOT_ELF64);
	assert_int_equal(f->out.mode, CPU_MODE_LONG);
	assert_int_equal(f->out.entry, GOOD_ENTRY);
	assert_int_equal(f->out.image_lo, 0x100000);
	assert_int_equal(f->out.image_hi, 0x203000);
	const uint8_t *ram = f->t.m.host;
	/* text, byte for byte, and untouched memory on both sides */
	for (uint64_t j = 0; j < 0x1800; j++)
		assert_int_equal(ram[0x100000 + j], seg_byte(0, j));
	assert_int_equal(ram[0xfffff], 0xcc);
	assert_int_equal(ram[0x101800], 0xcc);
	/* data, then bss zeroed */
	for (uint64_t j = 0; j < 0x100; j++)
		assert_int_equal(ram[0x200000 + j], seg_byte(3, j));
	for (uint64_t j = 0x100; j < 0x3000; j++)
		assert_int_equal(ram[0x200000 + j], 0);
	assert_int_equal(ram[0x203000], 0xcc);
	/* the empty PT_LOAD at 0 and the PT_NOTE wrote nothing */
	for (uint64_t a = 0; a < LOADER_LOW_RESERVED; a++)
		assert_int_equal(ram[a], 0xcc);
}

static void test_user_mode(void **state)
{
	struct fx *f = *state;
	build(f, GOOD_ENTRY);
	f->o.mode = CPU_MODE_USER;
	expect_ok(load(f), &f->e);
	assert_int_equal(f->out.mode, CPU_MODE_USER);
	f->o.mode = CPU_MODE_LONG;
	expect_ok(load(f), &f->e);
	assert_int_equal(f->out.mode, CPU_MODE_LONG);
}

static void test_mode_refused(void **state)
{
	struct fx *f = *state;
	build(f, GOOD_ENTRY);
	f->o.mode = CPU_MODE_REAL;
	expect_error(load(f), &f->e, NAME, "--cpu-mode real does not apply");
	f->o.mode = CPU_MODE_PROT32;
	expect_error(load(f), &f->e, NAME, "--cpu-mode protected does not apply");
}

static void test_truncated_header(void **state)
{
	struct fx *f = *state;
	build(f, GOOD_ENTRY);
	f->len = 40;
	expect_error(load(f), &f->e, NAME, "truncated ELF header (40 bytes, need 64)");
	f->len = 3;
	expect_error(load(f), &f->e, NAME, "bad ELF magic");
}

static void test_bad_magic(void **state)
{
	struct fx *f = *state;
	build(f, GOOD_ENTRY);
	f->img[1] = 'X';
	expect_error(load(f), &f->e, NAME, "bad ELF magic");
	expect_error(load_auto(f), &f->e, NAME, "not a multiboot or ELF64 image");
}

static void test_wrong_class(void **state)
{
	struct fx *f = *state;
	build(f, GOOD_ENTRY);
	f->img[EI_CLASS] = ELFCLASS32;
	expect_error(load(f), &f->e, NAME, "ELF class 1 is not ELFCLASS64");
	expect_error(load_auto(f), &f->e, NAME,
		     "not a multiboot or ELF64 image: an ELF32 file without a multiboot v1 header");
	f->img[EI_CLASS] = 7;
	expect_error(load(f), &f->e, NAME, "ELF class 7 is not ELFCLASS64");
}

static void test_wrong_encoding_version(void **state)
{
	struct fx *f = *state;
	build(f, GOOD_ENTRY);
	f->img[EI_DATA] = ELFDATA2MSB;
	expect_error(load(f), &f->e, NAME, "not little-endian");
	f->img[EI_DATA] = ELFDATA2LSB;
	eh(f)->e_version = 2;
	expect_error(load(f), &f->e, NAME, "ELF version 2 is not EV_CURRENT");
}

static void test_wrong_machine(void **state)
{
	struct fx *f = *state;
	build(f, GOOD_ENTRY);
	eh(f)->e_machine = EM_AARCH64;
	expect_error(load(f), &f->e, NAME, "ELF machine 183 is not EM_X86_64");
}

static void test_wrong_type(void **state)
{
	struct fx *f = *state;
	build(f, GOOD_ENTRY);
	eh(f)->e_type = ET_DYN;
	expect_error(load(f), &f->e, NAME, "ELF type 3 is not ET_EXEC");
	eh(f)->e_type = ET_REL;
	expect_error(load(f), &f->e, NAME, "ELF type 1 is not ET_EXEC");
}

static void test_header_sizes(void **state)
{
	struct fx *f = *state;
	build(f, GOOD_ENTRY);
	eh(f)->e_ehsize = 52;
	expect_error(load(f), &f->e, NAME, "e_ehsize 52 is not 64");
	eh(f)->e_ehsize = 64;
	eh(f)->e_phentsize = 32;
	expect_error(load(f), &f->e, NAME, "e_phentsize 32 is not 56");
}

static void test_phdr_table(void **state)
{
	struct fx *f = *state;
	build(f, GOOD_ENTRY);
	/* phoff beyond the file */
	eh(f)->e_phoff = f->len + 8;
	expect_error(load(f), &f->e, NAME, "program header table (offset");
	assert_non_null(strstr(f->e.msg, "extends beyond the end of the file"));
	/* phoff + the table wraps around 64 bits */
	eh(f)->e_phoff = UINT64_MAX - 16;
	expect_error(load(f), &f->e, NAME, "program header table (offset 0xffffffffffffffef");
	/* table inside the file start, but phnum * phentsize runs past the end */
	eh(f)->e_phoff = 64;
	eh(f)->e_phnum = 0xfffe;
	expect_error(load(f), &f->e, NAME, "65534 entries of 56 bytes) extends beyond the end");
	eh(f)->e_phnum = PN_XNUM;
	expect_error(load(f), &f->e, NAME, "PN_XNUM");
	eh(f)->e_phnum = 0;
	expect_error(load(f), &f->e, NAME, "no program headers");
}

static void test_segment_beyond_file(void **state)
{
	struct fx *f = *state;
	build(f, GOOD_ENTRY);
	ph(f, 3)->p_filesz = 0x2000; /* the file ends 0x1000 after p_offset */
	expect_error(load(f), &f->e, NAME, "program header 3: file range");
	assert_non_null(strstr(f->e.msg, "extends beyond the end of the file"));
	build(f, GOOD_ENTRY);
	ph(f, 0)->p_offset = UINT64_MAX - 4; /* offset + filesz wraps */
	expect_error(load(f), &f->e, NAME, "program header 0: file range [0xfffffffffffffffb");
}

static void test_filesz_over_memsz(void **state)
{
	struct fx *f = *state;
	build(f, GOOD_ENTRY);
	ph(f, 3)->p_memsz = 0x80;
	expect_error(load(f), &f->e, NAME,
		     "program header 3: p_filesz 0x100 is larger than p_memsz 0x80");
}

static void test_segment_outside_ram(void **state)
{
	struct fx *f = *state;
	f->segs[3].vaddr = RAM - 0x1000; /* bss runs 0x2000 past the end */
	build(f, GOOD_ENTRY);
	expect_error(load(f), &f->e, NAME,
		     "program header 3: segment [0x3ff000, 0x402000) extends beyond guest RAM");
	f->segs[3].vaddr = 0xffffffff80000000ull; /* a higher-half link address */
	build(f, GOOD_ENTRY);
	expect_error(load(f), &f->e, NAME, "program header 3: segment [0xffffffff80000000");
}

static void test_vaddr_wraps(void **state)
{
	struct fx *f = *state;
	build(f, GOOD_ENTRY);
	ph(f, 3)->p_vaddr = 0xfffffffffffff000ull;
	expect_error(load(f), &f->e, NAME,
		     "program header 3: segment at 0xfffffffffffff000 of 0x3000 bytes wraps");
	ph(f, 3)->p_vaddr = 0x200000;
	ph(f, 3)->p_memsz = UINT64_MAX;
	ph(f, 3)->p_filesz = 0;
	expect_error(load(f), &f->e, NAME, "program header 3: segment at 0x200000");
}

static void test_overlap(void **state)
{
	struct fx *f = *state;
	f->segs[3].vaddr = 0x101000; /* inside the text [0x100000, 0x101800) */
	build(f, GOOD_ENTRY);
	expect_error(load(f), &f->e, NAME,
		     "program header 0 [0x100000, 0x101800) overlaps program header 3 "
		     "[0x101000, 0x104000)");
	/* listed in the other order, still both named, lower address first */
	f->segs[3].vaddr = 0xff000;
	build(f, GOOD_ENTRY);
	expect_error(load(f), &f->e, NAME,
		     "program header 3 [0xff000, 0x102000) overlaps program header 0 "
		     "[0x100000, 0x101800)");
	/* touching segments do not overlap */
	f->segs[3].vaddr = 0x101800;
	build(f, GOOD_ENTRY);
	expect_ok(load(f), &f->e);
}

static void test_low_reserved(void **state)
{
	struct fx *f = *state;
	f->segs[0].vaddr = 0x8000;
	build(f, 0x8010);
	expect_error(load(f), &f->e, NAME,
		     "program header 0: segment at 0x8000 is in the low area [0, 0x10000)");
	f->segs[0].vaddr = LOADER_LOW_RESERVED;
	build(f, LOADER_LOW_RESERVED);
	expect_ok(load(f), &f->e);
	assert_int_equal(f->out.image_lo, LOADER_LOW_RESERVED);
}

static void test_entry(void **state)
{
	struct fx *f = *state;
	build(f, 0x101800); /* one past the end of the text */
	expect_error(load(f), &f->e, NAME,
		     "ELF entry point 0x101800 is outside every loaded segment");
	build(f, 0x200010); /* inside the data segment, which has no PF_X */
	expect_error(load(f), &f->e, NAME,
		     "ELF entry point 0x200010 is in program header 3 [0x200000, 0x203000), "
		     "which is not executable");
	build(f, 0x5000); /* inside the PT_NOTE, which is not loaded */
	expect_error(load(f), &f->e, NAME, "outside every loaded segment");
}

static void test_no_loadable_segment(void **state)
{
	struct fx *f = *state;
	f->segs[0] = good_segs[1];
	f->segs[1] = good_segs[2];
	f->n = 2;
	build(f, GOOD_ENTRY);
	expect_error(load(f), &f->e, NAME, "no non-empty PT_LOAD segment");
}

static void test_nothing_written_on_error(void **state)
{
	struct fx *f = *state;
	build(f, 0x101800);
	expect_error(load(f), &f->e, NAME, "entry point");
	for (uint64_t a = 0; a < RAM; a++)
		if (f->t.m.host[a] != 0xcc)
			fail_msg("byte at 0x%llx written by a failed load", (unsigned long long)a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	    T(test_good_image),
	    T(test_user_mode),
	    T(test_mode_refused),
	    T(test_truncated_header),
	    T(test_bad_magic),
	    T(test_wrong_class),
	    T(test_wrong_encoding_version),
	    T(test_wrong_machine),
	    T(test_wrong_type),
	    T(test_header_sizes),
	    T(test_phdr_table),
	    T(test_segment_beyond_file),
	    T(test_filesz_over_memsz),
	    T(test_segment_outside_ram),
	    T(test_vaddr_wraps),
	    T(test_overlap),
	    T(test_low_reserved),
	    T(test_entry),
	    T(test_no_loadable_segment),
	    T(test_nothing_written_on_error),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
