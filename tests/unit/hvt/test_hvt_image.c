/*
 * test_hvt_image.c: hvt_image_parse and hvt_boot_write (src/hvt/) on
 * executables built in memory: a good one, and each field made bad, sums
 * that would overflow included.
 */
#include <elf.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hvt/hvt.h"

#define MEM (16u << 20)

/* Layout: ehdr, 4 phdrs (text, data, note ABI, note MFT), notes, text. */
struct img {
	Elf64_Ehdr eh;
	Elf64_Phdr ph[4];
	struct {
		Elf64_Nhdr nh;
		char name[8];
		struct hvt_abi1 abi;
	} abi;
	struct {
		Elf64_Nhdr nh;
		char name[8];
		uint32_t version, entries;
		struct hvt_mft_entry e[2];
	} __attribute__((packed)) mft;
	uint8_t text[64];
};

static void build(struct img *m)
{
	memset(m, 0, sizeof(*m));
	memcpy(m->eh.e_ident, ELFMAG, SELFMAG);
	m->eh.e_ident[EI_CLASS] = ELFCLASS64;
	m->eh.e_ident[EI_DATA] = ELFDATA2LSB;
	m->eh.e_ident[EI_VERSION] = EV_CURRENT;
	m->eh.e_version = EV_CURRENT;
	m->eh.e_type = ET_EXEC;
	m->eh.e_machine = EM_X86_64;
	m->eh.e_entry = 0x100000;
	m->eh.e_phoff = offsetof(struct img, ph);
	m->eh.e_phentsize = sizeof(Elf64_Phdr);
	m->eh.e_phnum = 4;
	m->eh.e_ehsize = sizeof(Elf64_Ehdr);
	m->ph[0] = (Elf64_Phdr){.p_type = PT_LOAD,
				.p_flags = PF_R | PF_X,
				.p_offset = offsetof(struct img, text),
				.p_vaddr = 0x100000,
				.p_filesz = sizeof(m->text),
				.p_memsz = sizeof(m->text)};
	m->ph[1] = (Elf64_Phdr){.p_type = PT_LOAD,
				.p_flags = PF_R | PF_W,
				.p_vaddr = 0x101000,
				.p_memsz = 0x2000}; /* .bss only */
	m->ph[2] = (Elf64_Phdr){
	    .p_type = PT_NOTE, .p_offset = offsetof(struct img, abi), .p_filesz = sizeof(m->abi)};
	m->ph[3] = (Elf64_Phdr){
	    .p_type = PT_NOTE, .p_offset = offsetof(struct img, mft), .p_filesz = sizeof(m->mft)};
	m->abi.nh = (Elf64_Nhdr){6, sizeof(struct hvt_abi1), HVT_NOTE_ABI};
	memcpy(m->abi.name, "Solo5", 6);
	m->abi.abi = (struct hvt_abi1){HVT_ABI_TARGET, HVT_ABI_VERSION, 0, 0};
	m->mft.nh = (Elf64_Nhdr){6, (uint32_t)HVT_MFT_SIZE(2), HVT_NOTE_MFT};
	memcpy(m->mft.name, "Solo5", 6);
	m->mft.version = 1;
	m->mft.entries = 2;
	m->mft.e[0].type = HVT_MFT_RESERVED_FIRST;
	memcpy(m->mft.e[1].name, "disk", 5);
	m->mft.e[1].type = HVT_MFT_DEV_BLOCK_BASIC;
}

static int parse(struct img *m, char *msg, size_t len)
{
	struct hvt_image im;
	struct errbuf e;
	int r = hvt_image_parse("t", (const uint8_t *)m, sizeof(*m), MEM, &im, &e);
	if (r == 0)
		hvt_image_free(&im);
	else if (msg)
		snprintf(msg, len, "%s", e.msg);
	return r;
}

static void expect_error(struct img *m, const char *text)
{
	char msg[512] = "";
	assert_int_equal(parse(m, msg, sizeof(msg)), -1);
	if (strstr(msg, text) == NULL)
		fail_msg("message '%s' lacks '%s'", msg, text);
}

static void test_good(void **state)
{
	(void)state;
	struct img m;
	build(&m);
	struct hvt_image im;
	struct errbuf e;
	assert_int_equal(hvt_image_parse("t", (const uint8_t *)&m, sizeof(m), MEM, &im, &e), 0);
	assert_int_equal(im.entry, 0x100000);
	assert_int_equal(im.kernel_end, 0x103000);
	assert_int_equal(im.nro, 1);
	assert_int_equal(im.ro[0].lo, 0x100000);
	assert_int_equal(im.ro[0].hi, 0x101000);
	assert_int_equal(im.mft->entries, 2);
	assert_int_equal(hvt_mft_find(im.mft, "disk", HVT_MFT_DEV_BLOCK_BASIC), 1);
	assert_int_equal(hvt_mft_find(im.mft, "disk", HVT_MFT_DEV_NET_BASIC), -1);

	/* the boot state in a RAM buffer */
	struct guest_mem gm = {.size = MEM, .memfd = -1};
	gm.host = calloc(1, MEM);
	assert_non_null(gm.host);
	assert_int_equal(hvt_boot_write(&gm, &im, im.mft, im.mft_size, "a b", 1000, &e), 0);
	struct hvt_boot_info bi;
	memcpy(&bi, gm.host + HVT_BOOT_INFO_BASE, sizeof(bi));
	assert_int_equal(bi.mem_size, MEM);
	assert_int_equal(bi.kernel_end, 0x103000);
	assert_int_equal(bi.cpu_cycle_freq, 1000);
	assert_string_equal((char *)gm.host + bi.cmdline, "a b");
	assert_memory_equal(gm.host + bi.mft, im.mft, im.mft_size);
	uint64_t pte;
	memcpy(&pte, gm.host + HVT_PT_BASE + 8 * 0x10, 8); /* 0x10000: present, read-only */
	assert_int_equal(pte, 0x10001);
	memcpy(&pte, gm.host + HVT_PT_BASE + 8 * 0xf, 8); /* 0xf000: not present */
	assert_int_equal(pte, 0);
	memcpy(&pte, gm.host + HVT_PT_BASE + 8 * 0x100, 8); /* 1 MiB: read-write */
	assert_int_equal(pte, 0x100003);
	char big[HVT_CMDLINE_SIZE + 1];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(hvt_boot_write(&gm, &im, im.mft, im.mft_size, big, 1000, &e), -1);
	free(gm.host);
	hvt_image_free(&im);
}

static void test_segments(void **state)
{
	(void)state;
	struct img m;
	build(&m);
	m.ph[0].p_flags |= PF_W;
	expect_error(&m, "writable and executable");
	build(&m);
	m.ph[0].p_offset = UINT64_MAX - 8; /* offset + filesz wraps */
	expect_error(&m, "outside the file");
	build(&m);
	m.ph[1].p_vaddr = UINT64_MAX & ~0xfffull; /* vaddr + memsz wraps */
	expect_error(&m, "does not fit in guest memory");
	build(&m);
	m.ph[1].p_vaddr = 0x100000; /* overlaps the text */
	expect_error(&m, "overlaps");
	build(&m);
	m.ph[0].p_vaddr = 0xff000;
	expect_error(&m, "at or above 0x100000");
	build(&m);
	m.ph[0].p_filesz = m.ph[0].p_memsz + 1;
	expect_error(&m, "outside the file");
	build(&m);
	m.eh.e_entry = 0x101000;
	expect_error(&m, "not inside an executable segment");
	build(&m);
	m.ph[1] = (Elf64_Phdr){.p_type = PT_LOAD}; /* an empty segment at 0 is skipped */
	assert_int_equal(parse(&m, NULL, 0), 0);
	build(&m);
	m.eh.e_phnum = 0xffff;
	expect_error(&m, "program header table");
}

static void test_notes(void **state)
{
	(void)state;
	struct img m;
	build(&m);
	m.abi.abi.abi_version = 3;
	expect_error(&m, "hvt ABI version 3");
	build(&m);
	m.abi.abi.abi_target = 2;
	expect_error(&m, "not hvt");
	build(&m);
	m.abi.nh.n_descsz = 0xfffffff0u; /* huge descriptor */
	expect_error(&m, "note does not fall within valid size");
	build(&m);
	m.ph[3].p_filesz = 0xffffffffffffff00ull;
	expect_error(&m, "note does not fall within valid size");
	build(&m);
	m.abi.nh.n_type = 1;
	expect_error(&m, "no Solo5 ABI note");
	build(&m);
	m.mft.nh.n_type = 1;
	expect_error(&m, "no Solo5 manifest note");
	build(&m);
	m.mft.entries = 65;
	expect_error(&m, "65 entries");
	build(&m);
	m.mft.entries = 1;
	expect_error(&m, "need exactly");
	build(&m);
	m.mft.version = 0;
	expect_error(&m, "manifest version 0");
	build(&m);
	memset(m.mft.e[1].name, 'a', sizeof(m.mft.e[1].name));
	expect_error(&m, "not NUL-terminated");
	build(&m);
	m.mft.e[1].attached = true;
	expect_error(&m, "marked attached");
	build(&m);
	m.mft.e[0].type = HVT_MFT_DEV_NET_BASIC;
	expect_error(&m, "not the reserved first");
	build(&m);
	memcpy(m.mft.e[0].name, "disk", 5);
	m.mft.e[0].type = HVT_MFT_RESERVED_FIRST;
	m.mft.e[1].type = 9;
	expect_error(&m, "unknown device type 9");
	build(&m);
	m.ph[2].p_offset = sizeof(m) - 4;
	expect_error(&m, "note does not fall within valid size");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good),
	    cmocka_unit_test(test_segments),
	    cmocka_unit_test(test_notes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
