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

/*
 * Layout: ehdr, 4 phdrs (text, data, note ABI, note MFT), notes, text. The
 * notes are C structs as Solo5's toolchain (and guest/hvt/) declares them:
 * the compiler puts the manifest, 8-aligned, after 4 bytes of padding.
 */
struct mft1_note2 {
	struct hvt_note_hdr h;
	struct {
		uint32_t version, entries;
		struct hvt_mft_entry e[2];
	} m;
};
struct img {
	Elf64_Ehdr eh;
	Elf64_Phdr ph[4];
	struct hvt_abi1_note abi;
	struct mft1_note2 mft;
	uint8_t text[64];
};
_Static_assert(offsetof(struct mft1_note2, m) == 24, "the compiler pads the manifest");
_Static_assert(sizeof(struct mft1_note2) - sizeof(struct hvt_note_hdr) == 4 + 8 + 2 * 104 &&
		   HVT_MFT1_DESCSZ(2) == 4 + 8 + 2 * 104 && HVT_MFT1_DESCSZ(1) == 116,
	       "n_descsz of the manifest note");

/* The same manifest note as an earlier reader wrongly expected it:
 * struct mft right after the name, no padding (n_descsz 8 + 104 * 2). */
struct old_mft_note {
	struct hvt_note_hdr h;
	uint32_t version, entries;
	struct hvt_mft_entry e[2];
} __attribute__((packed));

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
	m->abi.h =
	    (struct hvt_note_hdr){6, sizeof(m->abi) - sizeof(m->abi.h), HVT_NOTE_ABI, "Solo5"};
	m->abi.abi = (struct hvt_abi1){HVT_ABI_TARGET, HVT_ABI_VERSION, 0, 0};
	m->mft.h =
	    (struct hvt_note_hdr){6, sizeof(m->mft) - sizeof(m->mft.h), HVT_NOTE_MFT, "Solo5"};
	m->mft.m.version = 1;
	m->mft.m.entries = 2;
	m->mft.m.e[0].type = HVT_MFT_RESERVED_FIRST;
	memcpy(m->mft.m.e[1].name, "disk", 5);
	m->mft.m.e[1].type = HVT_MFT_DEV_BLOCK_BASIC;
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
	m.abi.h.n_descsz = 0xfffffff0u; /* huge descriptor */
	expect_error(&m, "note does not fall within valid size");
	build(&m);
	m.ph[3].p_filesz = 0xffffffffffffff00ull;
	expect_error(&m, "note does not fall within valid size");
	build(&m);
	m.abi.h.n_type = 1;
	expect_error(&m, "no Solo5 ABI note");
	build(&m);
	m.mft.h.n_type = 1;
	expect_error(&m, "no Solo5 manifest note");
	build(&m);
	m.mft.m.entries = 65;
	expect_error(&m, "65 entries");
	build(&m);
	m.mft.m.entries = 1;
	expect_error(&m, "1 entries need exactly");
	build(&m);
	m.mft.m.version = 0;
	expect_error(&m, "manifest version 0");
	build(&m);
	memset(m.mft.m.e[1].name, 'a', sizeof(m.mft.m.e[1].name));
	expect_error(&m, "not NUL-terminated");
	build(&m);
	m.mft.m.e[1].attached = true;
	expect_error(&m, "marked attached");
	/* any byte but 0 is refused, not only a C true (1): a bool holding 2
	 * is what a file may say, and reading it as a bool is undefined */
	build(&m);
	((uint8_t *)&m.mft.m.e[1])[offsetof(struct hvt_mft_entry, attached)] = 2;
	expect_error(&m, "manifest entry 1 ('disk') is marked attached in the file (byte 0x02");
	build(&m);
	((uint8_t *)&m.mft.m.e[1])[offsetof(struct hvt_mft_entry, attached)] = 0x80;
	expect_error(&m, "(byte 0x80");
	build(&m);
	m.mft.m.e[0].type = HVT_MFT_DEV_NET_BASIC;
	expect_error(&m, "not the reserved first");
	build(&m);
	memcpy(m.mft.m.e[0].name, "disk", 5);
	m.mft.m.e[0].type = HVT_MFT_RESERVED_FIRST;
	m.mft.m.e[1].type = 9;
	expect_error(&m, "unknown device type 9");
	build(&m);
	m.ph[2].p_offset = sizeof(m) - 4;
	expect_error(&m, "note does not fall within valid size");
}

/*
 * The manifest note built both ways: as the compiler lays out the C struct
 * (Solo5's toolchain, guest/hvt/) and packed without the padding. The
 * first is read; the second is refused; and the reading that took the
 * descriptor's first word for the version sees 0 in the first (the bug
 * that refused every real unikernel).
 */
static void test_mft_layout(void **state)
{
	(void)state;
	struct img m;
	build(&m);
	assert_int_equal(m.mft.h.n_descsz, 4 + 8 + 2 * 104);
	struct hvt_image im;
	struct errbuf e;
	assert_int_equal(hvt_image_parse("t", (const uint8_t *)&m, sizeof(m), MEM, &im, &e), 0);
	assert_int_equal(im.mft->version, 1);
	assert_int_equal(im.mft->entries, 2);
	assert_string_equal(im.mft->e[1].name, "disk");
	assert_int_equal(im.mft_size, HVT_MFT_SIZE(2));
	hvt_image_free(&im);
	uint32_t first_word;
	memcpy(&first_word, (const uint8_t *)&m.mft + sizeof(struct hvt_note_hdr), 4);
	assert_int_equal(first_word, 0); /* padding, not the version */

	/* the packed layout, in the same place */
	struct old_mft_note old;
	memset(&old, 0, sizeof(old));
	old.h = (struct hvt_note_hdr){6, sizeof(old) - sizeof(old.h), HVT_NOTE_MFT, "Solo5"};
	old.version = 1;
	old.entries = 2;
	old.e[0].type = HVT_MFT_RESERVED_FIRST;
	memcpy(old.e[1].name, "disk", 5);
	old.e[1].type = HVT_MFT_DEV_BLOCK_BASIC;
	_Static_assert(sizeof(old) <= sizeof(m.mft), "fits");
	memset(&m.mft, 0, sizeof(m.mft));
	memcpy(&m.mft, &old, sizeof(old));
	m.ph[3].p_filesz = sizeof(old);
	expect_error(&m, "manifest note does not fall within valid size");

	/* exact sizes: one byte more or less than the entries need */
	build(&m);
	m.mft.h.n_descsz -= 1;
	expect_error(&m, "note does not fall within valid size");
	build(&m);
	m.mft.h.n_descsz = 4 + 8 + 104 - 1;
	expect_error(&m, "note does not fall within valid size");
	build(&m);
	m.mft.m.entries = 1; /* 2 entries' bytes */
	expect_error(&m, "note does not fall within valid size");
	build(&m);
	m.abi.h.n_descsz = 12; /* not the 16 bytes of struct hvt_abi1 */
	expect_error(&m, "ABI note does not fall within valid size");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good),
	    cmocka_unit_test(test_segments),
	    cmocka_unit_test(test_notes),
	    cmocka_unit_test(test_mft_layout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
